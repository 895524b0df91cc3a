"""The plain-Python side of bench/sdk-overhead (not a test): the same prompt-tuning job run in-process by
``softprompt_worker.training.loop.train``, no worker and no wire. Reads one JSON job (benchlib.JobSpec fields)
per stdin line, answers one JSON line (``benchlib.run_ours``). Kept alive between runs so both sides are
warm (torch imported, model built) and the bench can alternate them. ``"thread": true`` runs the job in a
fresh thread, as the worker does (server.py's compute thread): on a loaded 2-core machine torch's CPU
kernels ran ~1.4-5x faster there than on the main thread, so that is the like-for-like baseline."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import benchlib  # noqa: E402

print(json.dumps({"ready": True, "versions": benchlib.versions()}), flush=True)
for line in sys.stdin:
    raw = json.loads(line)
    in_thread = raw.pop("thread", False)
    job = benchlib.JobSpec(**raw)
    if in_thread:
        out: list = []
        worker = threading.Thread(target=lambda: out.append(benchlib.run_ours(job)), name="compute")
        worker.start()
        worker.join()
        print(json.dumps(out[0]), flush=True)
    else:
        print(json.dumps(benchlib.run_ours(job)), flush=True)
