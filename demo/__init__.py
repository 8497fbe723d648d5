"""Demo mode: the emulator with a seeded fleet plus the service configured against it.

`make demo` (or `python -m demo`) starts everything on SQLite under var/demo/, prints an admin key
and a walkthrough; `demo.walkthrough` holds the walkthrough as data so the e2e test runs exactly
what is printed.
"""
