"""A TCP relay that puts network distance between a benchmark and PostgreSQL (issue 16).

    .venv/bin/python -m bench.db_latency [--delay-ms 0.5] [--target 127.0.0.1:5432] [--port 0]

Prints ``port=<n>`` once it listens, then relays every connection to ``--target``, holding each
chunk ``--delay-ms`` in each direction (a thread per direction), so every round trip
to the database costs about twice that more, as a database in another host or zone does (Azure
Database for PostgreSQL in the same region: ~0.5-2 ms). Then point a benchmark's ``--postgres``
at ``postgresql://postgres@127.0.0.1:<n>/test``. It measures and prints the round trip it adds
(``SELECT 1`` through it and straight, p50): the relay's own copying adds a little to the delay.

Used for: what a unit of work's round trips cost once the database is not on the same host
(``bench/README.md``, "Round trips to PostgreSQL").
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg


def _pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
    """Copy ``source`` to ``sink``, each chunk held ``delay`` after it arrived (a thread per
    direction: ``time.sleep`` is precise to tens of microseconds, an event loop's timers wake in
    whole milliseconds). PostgreSQL's protocol has one exchange in flight per connection, so
    chunks do not queue behind each other's delay."""
    try:
        while True:
            data = source.recv(256 * 1024)
            arrived = time.monotonic()
            if not data:
                break
            wait = arrived + delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (sink, source):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _serve(port: int, host: str, target_port: int, delay: float) -> None:
    listener = socket.create_server(("127.0.0.1", port))
    print(f"port={listener.getsockname()[1]}", flush=True)
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((host, target_port))
        except OSError:
            client.close()
            continue
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b, delay), daemon=True).start()


def round_trip_ms(dsn: str, n: int = 200) -> float:
    """p50 of ``SELECT 1`` on one autocommit connection."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)[n // 2]


@contextlib.contextmanager
def relay(dsn: str, delay_ms: float) -> Iterator[str]:
    """Start the relay in its own process (its CPU is not the measured process's); yield ``dsn``
    pointed at it."""
    host_port = dsn.split("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.db_latency",
            "--delay-ms",
            str(delay_ms),
            "--target",
            f"{host}:{port or 5432}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("port="):
            raise RuntimeError(f"the relay did not start: {line!r}")
        yield dsn.replace(host_port, f"127.0.0.1:{line.split('=')[1]}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay-ms", type=float, default=0.5, help="per direction")
    parser.add_argument("--target", default="127.0.0.1:5432")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--measure", metavar="DSN", help="start a relay, print the round trip it adds, exit"
    )
    args = parser.parse_args()
    if args.measure:
        with relay(args.measure, args.delay_ms) as through:
            direct, relayed = round_trip_ms(args.measure), round_trip_ms(through)
        print(
            f"SELECT 1 round trip p50: direct {direct:.3f} ms, through the relay {relayed:.3f} ms"
            f" (+{relayed - direct:.3f} ms)"
        )
        return 0
    host, _, port = args.target.partition(":")
    with contextlib.suppress(KeyboardInterrupt):
        _serve(args.port, host, int(port or 5432), args.delay_ms / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
