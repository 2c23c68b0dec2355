"""Starts N local workers of a multi-worker run on free loopback ports (for one machine).

    python -m ader_tf.launch --workers=2 -- main.py --distribution_strategy=multi_worker ...

Each worker is ``python <script> <args>`` with its own ``TF_CONFIG`` (the cluster of every
worker's ``localhost:<port>``, and its index; worker 0 is the chief). Their output is printed
with a ``[worker i]`` prefix. The launcher exits with the first non-zero exit code of a
worker, or 0. On several machines, set ``TF_CONFIG`` on each yourself (see README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that are free now (bound to port 0, then released).

    Another process could take one before a worker binds it; for trying a run on one machine
    that race is rare enough, and a worker that cannot bind fails at start with TF's message.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(ports: Sequence[int]) -> list[str]:
    """The ``TF_CONFIG`` value of each worker of a local cluster on ``ports``."""
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(len(ports))]


def start_workers(command: Sequence[str], workers: int,
                  env: dict[str, str] | None = None, **popen: object) -> list[subprocess.Popen]:
    """Starts ``workers`` processes of ``command``, each with its ``TF_CONFIG``."""
    base = dict(os.environ if env is None else env)
    return [subprocess.Popen(list(command), env=dict(base, TF_CONFIG=config), **popen)
            for config in tf_configs(free_ports(workers))]


def _relay(index: int, stream) -> None:
    for line in stream:
        sys.stdout.write(f"[worker {index}] {line}")
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (>= 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- script.py [args]: run with the launcher's Python")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.workers < 1 or not command:
        parser.error("give --workers >= 1 and a command after --")
    procs = start_workers([sys.executable, *command], args.workers, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    relays = [threading.Thread(target=_relay, args=(i, p.stdout), daemon=True)
              for i, p in enumerate(procs)]
    for t in relays:
        t.start()
    codes = [p.wait() for p in procs]
    for t in relays:
        t.join()
    for i, code in enumerate(codes):
        print(f"[launch] worker {i} exited with {code}", file=sys.stderr)
    return next((c for c in codes if c != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
