"""Fused-training benchmark (not a test): a sweep of 8 prompt-tuning jobs on one frozen model, trained one after
another (8 ``train`` ops) vs together in shared passes (one ``train_many``, training/fused.py), in one process.

    .venv/bin/python bench/fused/bench.py                      # CPU: the embedded SmolLM2-135M
    python bench/fused/bench.py --device cuda --model qwen-0.5b --out bench/results/fused-gpu.json   # a GPU

The sweep: lr in {0.3, 0.1, 0.03, 0.01} x virtual tokens in {8, 20}, the same rows (data/debian descriptions
-> their section, generation task), steps, batch size and seed. Both arms run the ops' handlers in this
process (no socket: the wire is not what is measured). Reported: wall time of each arm, the ratio
sequential / fused, and per job the largest relative difference of its step losses between the arms (the
equality test is test_fused_training.py; here it shows the numbers the timing came with). Writes
bench/results/fused.json (``--out``).

On the CPU every forward pass is compute-bound, so one pass over 8x the rows costs about 8 passes: expect
about 1x. On a GPU a small job leaves the device mostly idle and the fused pass fills it: the GPU run of this
script (``--device cuda``, a 0.5B config built on the device) is where the gain shows; the target there is 4x.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import torch  # noqa: E402

from softprompt_worker.ops import load_op_modules  # noqa: E402
from softprompt_worker.serving.handlers import CancelFlag, OpContext, Request, WorkerState, get_op  # noqa: E402

GPU_MODELS = {  # built from a config on the device (no hub): a Qwen2-0.5B shape
    "qwen-0.5b": {"tiny": "llama", "overrides": {"hidden_size": 896, "intermediate_size": 4864,
                                                 "num_hidden_layers": 24, "num_attention_heads": 14,
                                                 "num_key_value_heads": 2, "vocab_size": 32000}},
}


def rows(n: int) -> list[dict]:
    data = ROOT / "data" / "debian" / "classify.train.jsonl"
    out = []
    for line in data.read_text().splitlines()[:n]:
        row = json.loads(line)
        out.append({"input": row["input"][:200], "target": row["label"]})
    return out


def sweep(model: dict, train_rows: list[dict], steps: int, batch: int, max_length: int, root: Path, tag: str) -> list[dict]:
    return [{"model": model, "method": "prompt_tuning", "method_config": {"num_virtual_tokens": n}, "task": "generation",
             "data": {"train": {"rows": train_rows}},
             "training": {"steps": steps, "batch_size": batch, "max_length": max_length, "lr": lr, "log_every": 1,
                          "eval_baseline": False, "seed": 0},
             "run_dir": str(root / f"{tag}-lr{lr}-n{n}")}
            for lr in (0.3, 0.1, 0.03, 0.01) for n in (8, 20)]


def call(state: WorkerState, op: str, body: dict) -> tuple[dict, list[dict]]:
    events: list[dict] = []
    ctx = OpContext(1, op, state, lambda _i, _o, event, _t: events.append(event), CancelFlag())
    return get_op(op).handler(Request(1, op, body), ctx).body, events


def losses(events: list[dict], job: int | None = None) -> list[float]:
    return [e["loss"] for e in events if e["event"] == "step" and e.get("job") == job]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="smollm2", help="smollm2 (embedded) or " + ", ".join(GPU_MODELS))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "fused.json"))
    args = parser.parse_args()
    assert not load_op_modules(["softprompt_worker.ops.train", "softprompt_worker.ops.train_many"])
    model = ({"embedded": args.model} if args.model not in GPU_MODELS else dict(GPU_MODELS[args.model]))
    model["device"] = args.device
    train_rows = rows(64)
    state = WorkerState()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        call(state, "train", {**sweep(model, train_rows, 1, args.batch, args.max_length, root, "warm")[0]})  # load once

        def sync() -> None:
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        sync()
        start = time.perf_counter()
        alone = [call(state, "train", body) for body in sweep(model, train_rows, args.steps, args.batch, args.max_length, root, "alone")]
        sync()
        sequential_s = time.perf_counter() - start
        start = time.perf_counter()
        reply, events = call(state, "train_many", {"jobs": sweep(model, train_rows, args.steps, args.batch, args.max_length, root, "fused")})
        sync()
        fused_s = time.perf_counter() - start
    diffs = []
    for i, (_, alone_events) in enumerate(alone):
        a, f = losses(alone_events), losses(events, i)
        diffs.append(max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, f)) if a and len(a) == len(f) else None)
    result = {
        "bench": "fused", "device": args.device, "model": args.model, "jobs": 8, "steps": args.steps,
        "batch_size": args.batch, "max_length": args.max_length, "rounds": reply["rounds"],
        "sequential_s": round(sequential_s, 3), "fused_s": round(fused_s, 3),
        "speedup_fused_vs_sequential": round(sequential_s / fused_s, 3),
        "max_relative_loss_difference": max(d for d in diffs if d is not None) if all(d is not None for d in diffs) else None,
        "all_completed": all(end.get("reply", {}).get("status") == "completed" for end in reply["jobs"]),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
    }
    print(f"8 jobs x {args.steps} steps on {args.model} ({args.device}): sequential {sequential_s:.1f} s, "
          f"fused {fused_s:.1f} s -> {result['speedup_fused_vs_sequential']}x; losses differ by at most "
          f"{result['max_relative_loss_difference']:.2e} (relative)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
