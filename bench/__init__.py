"""Benchmarks (issue 16): each prints its same-run baseline, ratios and verdict lines."""


def verdict(name: str, value: float, target: str, ok: bool) -> None:
    """One ``name=value target... PASS|FAIL`` line: what ``python -m bench`` records."""
    print(f"{name}={value:.3f} target{target} {'PASS' if ok else 'FAIL'}", flush=True)


def service_cli(env: dict[str, str], *args: str) -> str:
    """``python -m service.cli ARGS`` from the checkout with ``env``; its standard output."""
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
