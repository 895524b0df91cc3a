"""Real-size models on one GPU (not a test): prompt tuning an 8B- and a 70B-shaped Llama built from configs
(random weights), bf16 and NF4, gradient checkpointing off and on: tokens/s, MFU, peak memory.

    python bench/gpu/sizes.py --out /tmp/gpu-sizes.json     # one H100/H200, ~4 minutes
    python bench/gpu/sizes.py --smoke                       # tiny shapes on the CPU (NF4 via bitsandbytes' CPU backend)

Each run: build the frozen model on the device (NF4 70B is built one quantized layer at a time), train
``--steps`` steps of prompt tuning on Debian generation rows (``max_length`` tokens), time the steps after
the first (warm-up), and read the CUDA peak. A run that does not fit is recorded as out of memory, which is
an answer too. MFU counts the frozen model's forward and input-gradient backward (4 FLOPs per parameter and
token; the input embedding table is left out, a lookup) plus attention, as bench/gpu/bench.py does, against
the card's dense bf16 peak; an NF4 step does the same matmuls in bf16 after dequantizing, so its MFU shows
what the dequantization costs.

Writes bench/results/gpu-sizes.json (-smoke with --smoke), or the file ``--out`` names.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import benchlib  # noqa: E402
from bench import PEAK_BF16_TFLOPS, peak_tflops  # noqa: E402,F401  (same folder)

# Llama-3's vocabulary (128,256 rows, untied): the tiny byte tokenizer only uses the first ids, but the embedding
# table, the output head and the f32 logits the loss reads are as large as a real 8B/70B's.
SHAPES = {
    "llama-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "max_position_embeddings": 8192, "vocab_size": 128256},
    "llama-70b": {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                  "num_attention_heads": 64, "num_key_value_heads": 8, "max_position_embeddings": 8192,
                  "vocab_size": 128256},
}
SMOKE_SHAPES = {"llama-smoke": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}}
# (shape, quantization, gradient checkpointing, batch size): what one GPU should hold, and the edges.
PLAN = [("llama-8b", None, False, 16), ("llama-8b", None, True, 16), ("llama-8b", "nf4", False, 16),
        ("llama-8b", "nf4", True, 16), ("llama-70b", "nf4", True, 4), ("llama-70b", "nf4", False, 4)]


def run(shape: str, overrides: dict, quantization: str | None, recompute: bool, batch_size: int, *, steps: int,
        max_length: int, device: str, rows: list[dict]) -> dict:
    import torch
    from softprompt_worker.methods.registry import method_class
    from softprompt_worker.models import ModelSpec, load_frozen_model
    from softprompt_worker.tasks.registry import task_class
    from softprompt_worker.training.loop import TrainingConfig, train

    record = {"shape": shape, "quantization": quantization or "bf16", "gradient_checkpointing": recompute,
              "batch_size": batch_size, "max_length": max_length, "steps": steps}
    cuda = device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    frozen = load_frozen_model(ModelSpec(tiny="llama", overrides=overrides, device=device,
                                         dtype="bf16", quantization=quantization))
    record["load_s"] = time.perf_counter() - t0
    record["params"] = sum(_logical_numel(p) for p in frozen.model.parameters())
    if cuda:
        record["weights_gib"] = torch.cuda.memory_allocated() / 2**30
        record["load_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    cls = method_class("prompt_tuning")
    method = cls(cls.config_class.from_dict({"num_virtual_tokens": 20}), frozen)
    task = task_class("generation")(method, {"max_length": max_length}, rows, [])
    step_times: list[float] = []
    step_tokens: list[int] = []

    def emit(event: dict) -> None:
        if event["event"] == "step":
            step_times.append(time.perf_counter())
            step_tokens.append(event["tokens_per_s"])

    config = TrainingConfig(steps=steps, batch_size=batch_size, max_length=max_length, lr=3e-2, log_every=1,
                            eval_baseline=False, gradient_checkpointing=recompute, dtype="bf16")
    try:
        summary = train(method, task, config, emit=emit)
    except torch.OutOfMemoryError as exc:
        record["error"] = f"out of memory: {str(exc)[:200]}"
        return record
    finally:
        del method, task
    # Tokens per second over the steps after the first (kernels chosen, allocator warm).
    record["tokens_per_s"] = sum(step_tokens[1:]) / max(len(step_tokens) - 1, 1)
    record["final_loss"] = summary["final_loss"]
    mean_len = summary["tokens"] / (steps * batch_size) + 20
    cfg = frozen.config
    n = record["params"] - cfg.vocab_size * cfg.hidden_size  # the input embedding is a lookup, no FLOPs
    flops_per_token = 4 * n + 12 * cfg.num_hidden_layers * mean_len * cfg.hidden_size
    peak = peak_tflops()
    if peak:
        record["mfu"] = record["tokens_per_s"] * flops_per_token / (peak * 1e12)
    if cuda:
        record["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return record


def _logical_numel(param) -> int:
    from softprompt_worker.models.quantize import logical_shape

    size = 1
    for d in logical_shape(param):
        size *= d
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--only", default=None, help="comma-separated shapes to run (default: all in the plan)")
    ap.add_argument("--budget-s", type=float, default=240, help="skip runs that would start after this")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sys.modules["zmq"] = None  # type: ignore[assignment]  # the GPU machine has no wire
    import torch

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    shapes = SMOKE_SHAPES if args.smoke else SHAPES
    plan = [("llama-smoke", q, r, 4) for _, q, r, _ in PLAN[:4]] if args.smoke else PLAN
    if args.only:
        plan = [p for p in plan if p[0] in args.only.split(",")]
    steps = args.steps or (3 if args.smoke else 8)
    max_length = 64 if args.smoke else args.max_length
    rows = benchlib.load_rows(n=512)
    out_path = args.out or benchlib.RESULTS / ("gpu-sizes-smoke.json" if args.smoke else "gpu-sizes.json")
    result: dict = {"versions": benchlib.versions("bitsandbytes"), "device": device, "smoke": args.smoke,
                    "peak_bf16_tflops": peak_tflops(), "runs": []}
    deadline = time.monotonic() + args.budget_s
    for shape, quantization, recompute, batch_size in plan:
        if time.monotonic() > deadline:
            result["runs"].append({"shape": shape, "quantization": quantization or "bf16",
                                   "gradient_checkpointing": recompute, "skipped": "out of time"})
            continue
        try:
            record = run(shape, shapes[shape], quantization, recompute, batch_size, steps=steps,
                         max_length=max_length, device=device, rows=rows)
        except Exception as exc:  # noqa: BLE001 - one failing configuration is a finding
            record = {"shape": shape, "quantization": quantization or "bf16", "gradient_checkpointing": recompute,
                      "error": f"{type(exc).__name__}: {exc}"[:500]}
        result["runs"].append(record)
        print(_line(record), flush=True)
        benchlib.write_result(out_path, result)
        benchlib._MODELS.clear()
        if device == "cuda":
            torch.cuda.empty_cache()
    print(f"wrote {benchlib.write_result(out_path, result)}")


def _line(r: dict) -> str:
    head = f"{r['shape']:11s} {r['quantization']:5s} gc={'on ' if r['gradient_checkpointing'] else 'off'}"
    if "error" in r or "skipped" in r:
        return f"{head} {r.get('error') or r.get('skipped')}"
    mem = f", weights {r['weights_gib']:.1f} GiB, peak {r['peak_gib']:.1f} GiB" if "peak_gib" in r else ""
    mfu = f", MFU {100 * r['mfu']:.1f}%" if "mfu" in r else ""
    return f"{head} batch {r['batch_size']}: {r['tokens_per_s']:.0f} tok/s{mfu}{mem}, load {r['load_s']:.0f} s"


if __name__ == "__main__":
    main()
