"""The Python worker's loop alone (not a test): ping round trips from a pyzmq DEALER, no Node, no SDK.

    .venv/bin/python bench/ipc/worker_loop.py                      # raw echo vs this tree's worker
    .venv/bin/python bench/ipc/worker_loop.py --baseline-src DIR   # ... and a worker from DIR, e.g.
        # mkdir /tmp/old && git archive HEAD python/softprompt_worker | tar -x -C /tmp/old
        # then --baseline-src /tmp/old/python

The servers take turns, one ping each, so load from elsewhere hits them alike; prints each one's median round
trip and what it adds over the raw echo (bench/ipc/raw_echo_server.py) of the same run. Use it to
measure a change to server.py/protocol.py; `npm run bench:ipc` remains the number of record.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import zmq

ROOT = Path(__file__).resolve().parents[2]
PING = msgpack.packb({"v": 1, "id": 1, "kind": "request", "op": "ping", "body": {}, "tensors": []})


def start(name: str, src: Path | None, sock_dir: str) -> tuple[subprocess.Popen, str]:
    """Start the raw echo (`src` None) or a worker importing softprompt_worker from `src`."""
    if src is None:
        cmd = [sys.executable, str(ROOT / "bench/ipc/raw_echo_server.py"), f"ipc://{sock_dir}/{name}.sock"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        return proc, proc.stdout.readline().decode().split()[1]
    cmd = [sys.executable, "-m", "softprompt_worker", "--endpoint", f"ipc://{sock_dir}/{name}.sock", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(src)})
    return proc, json.loads(proc.stdout.readline().decode().split(" ", 1)[1])["endpoint"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-src", type=Path, help="a python/ folder holding another softprompt_worker")
    parser.add_argument("--n", type=int, default=5000, help="timed round trips per server")
    args = parser.parse_args()
    servers: dict[str, Path | None] = {"raw": None, "worker": ROOT / "python"}
    if args.baseline_src:
        servers["baseline"] = args.baseline_src
    context = zmq.Context()
    procs, socks = [], {}
    with tempfile.TemporaryDirectory() as sock_dir:
        try:
            for name, src in servers.items():
                proc, endpoint = start(name, src, sock_dir)
                procs.append(proc)
                socks[name] = context.socket(zmq.DEALER)
                socks[name].connect(endpoint)
            times: dict[str, list[float]] = {name: [] for name in servers}
            for i in range(args.n + 200):  # the first 200 warm up
                for name, sock in socks.items():  # one each in turn: load from elsewhere hits all alike
                    t = time.perf_counter_ns()
                    sock.send(PING)
                    sock.recv_multipart()
                    if i >= 200:
                        times[name].append((time.perf_counter_ns() - t) / 1e3)
            raw = statistics.median(times["raw"])
            for name, ts in times.items():
                med = statistics.median(ts)
                print(f"{name:9s} median {med:6.1f} µs   +{med - raw:5.1f} µs over raw   ratio {med / raw:.2f}x")
        finally:
            for sock in socks.values():
                sock.close(linger=0)
            for proc in procs:
                proc.terminate()
                proc.wait()
            context.term()


if __name__ == "__main__":
    main()
