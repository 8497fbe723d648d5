"""`python -m demo` (what `make demo` runs): start the demo, print the walkthrough, wait."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from demo.stack import DemoInfo, DemoStack
from demo.walkthrough import DELEGATED_USER, RETENTION_STEPS, STEPS, compat_snippet, curl


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8443, help="service port (HTTPS)")
    parser.add_argument("--emulator-port", type=int, default=9443, help="emulator port")
    parser.add_argument("--dir", type=Path, default=Path("var/demo"), help="state and logs")
    return parser.parse_args(argv)


def banner(info: DemoInfo) -> str:
    lines = [
        "",
        "AML monitoring control plane: demo is up",
        f"  console   {info.console_url}   (sign in with the admin key below)",
        f"  service   {info.service_url}   (Swagger UI: {info.service_url}/docs/)",
        f"  emulator  {info.emulator_url}   (Azure: Entra ID, ARM, AML, Log Analytics)",
        f"  CA        {info.ca_path}   (the demo's own CA: your browser will warn once)",
        f"  logs      {info.workdir}/service.log, {info.workdir}/worker.log",
        "",
        "Admin API key (shown once):",
        f"  export AMLCP_KEY={info.admin_key}",
        "",
        "Walkthrough:",
    ]
    for number, step in enumerate(STEPS, start=1):
        lines.append(f"{number:2}. {step.title}")
        values = {"login_id": "<id from the previous step>"} if step.needs else None
        lines.append("    " + curl(step, info.service_url, info.ca_path, values))
        if step.note:
            lines.append(f"    ({step.note})")
    lines.append(f"    Sign-in page: {info.emulator_url}/devicelogin  (user: {DELEGATED_USER})")
    lines.append(f"{len(STEPS) + 1:2}. The real azure-monitor-query client through the service:")
    lines.append(compat_snippet(info.service_url, info.ca_path, info.la_workspace_id))
    lines += ["", "Retention (Log Analytics data export rules; exported rows go to Azurite):"]
    for number, step in enumerate(RETENTION_STEPS, start=len(STEPS) + 2):
        lines.append(f"{number:2}. {step.title}")
        lines.append("    " + curl(step, info.service_url, info.ca_path))
        if step.note:
            lines.append(f"    ({step.note})")
    lines.append(f"    Azurite: {info.azurite_blob_endpoint or 'not running (npm missing)'}")
    lines += ["", "Ctrl-C stops everything."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    stack = DemoStack(args.dir.resolve(), port=args.port, emulator_port=args.emulator_port)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        info = stack.start()
        print(banner(info), flush=True)
        stop.wait()
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
