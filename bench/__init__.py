"""Benchmarks (issue 16): each prints its same-run baseline, ratios and verdict lines."""


def verdict(name: str, value: float, target: str, ok: bool) -> None:
    """One ``name=value target... PASS|FAIL`` line: what ``python -m bench`` records."""
    print(f"{name}={value:.3f} target{target} {'PASS' if ok else 'FAIL'}", flush=True)
