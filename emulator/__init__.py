"""Local Azure emulator: Entra ID, ARM, AML model management and Log Analytics over HTTPS."""
