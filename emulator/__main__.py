"""Run the emulator standalone: `python -m emulator --port 8443 --fleet emulator/fleets/demo.yaml`.

Prints the URL and the CA path (point REQUESTS_CA_BUNDLE at it), then serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from emulator.app import build_app
from emulator.fleet import load_fleet
from emulator.https import EmulatorServer
from emulator.state import EmulatorState
from emulator.tls import CertificateAuthority


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8443, help="port; 0 picks a free one (default 8443)"
    )
    parser.add_argument(
        "--fleet", type=Path, help="fleet file (YAML/JSON) to seed tenants and services"
    )
    parser.add_argument(
        "--tls-dir", type=Path, help="where the CA and server certificate are written"
    )
    parser.add_argument(
        "--operation-duration",
        type=float,
        default=2.0,
        help="seconds an MMS update or deployment operation runs",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for fractional faults")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parse(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    state = EmulatorState(seed=args.seed)
    state.services.operation_duration_s = args.operation_duration
    state.online.operation_duration_s = args.operation_duration
    ca = CertificateAuthority.create(args.tls_dir) if args.tls_dir else None
    server = EmulatorServer(
        build_app(state), host=args.host, port=args.port, ca=ca, tls_dir=args.tls_dir
    )
    server.start()
    if args.fleet:
        summary = load_fleet(state, args.fleet)
        logging.getLogger("emulator").info("fleet loaded: %s", summary)
    # stdout is the interface for scripts: two stable lines, flushed before serving.
    sys.stdout.write(f"EMULATOR_URL={server.url}\nEMULATOR_CA={server.ca_path}\n")
    sys.stdout.flush()

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
