"""GPU training benchmark (not a test): softprompt's training loop vs PEFT + transformers Trainer on models
built from configs (random weights, bf16), in one process, the sides taking turns. No wire: the GPU machine
has no pyzmq, so this measures softprompt_worker.training.loop.train in-process (bench/sdk-overhead shows what
the worker and SDK add: a few percent at most).

    bench/gpu/run.sh                        # on one H100/H200, fits in 8 minutes
    bench/gpu/run.sh --out /tmp/gpu.json    # results where a remote run can collect them
    bench/gpu/run.sh --smoke                # tiny sizes on the CPU, with the GPU settings (bf16 weights,
                                            # bf16 autocast, Trainer bf16): checks the script runs

Per (model, method): tokens/s (real tokens of the rows, virtual tokens not counted), estimated model FLOPs
utilisation, and the memory the training needed above the resident frozen weights (activations,
gradients, optimizer state), ours and PEFT's, plus the ratio ours / PEFT (target >= 1.3x).

MFU estimate: a prompt-learning step runs the frozen model forward (2N FLOPs per token) and backward for
input gradients only (another ~2N; no weight gradients), plus attention (~12 * layers * T * d per token
over forward and backward): flops/token = 4N + 12*L*T*d with T the mean padded sequence length. Divided by
the card's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s). An estimate, not a profiler count.

Writes bench/results/gpu.json (bench/results/gpu-smoke.json with --smoke), or the file ``--out`` names.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import benchlib  # noqa: E402
from benchlib import JobSpec, median  # noqa: E402

# Llama-shaped, grouped-query attention, byte vocabulary (tiny.py's tokenizer: no download).
MODELS = {
    "llama-0.5b": {"hidden_size": 1280, "intermediate_size": 3456, "num_hidden_layers": 24,
                   "num_attention_heads": 20, "num_key_value_heads": 4, "max_position_embeddings": 2048},
    "llama-1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 2048},
    # Llama-3-8B's shape (byte vocabulary: the 128k embedding table is left out of the timed work anyway).
    "llama-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192},
}
DEFAULT_MODELS = "llama-0.5b,llama-1b"
SMOKE_MODELS = {"llama-smoke": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def peak_tflops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def flops_per_token(frozen, seq_len: float) -> float:
    n = sum(p.numel() for p in frozen.model.parameters())
    cfg = frozen.config
    return 4 * n + 12 * cfg.num_hidden_layers * seq_len * cfg.hidden_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: check the script runs")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--models", default=None, help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--out", type=Path, default=None, help="results file (default bench/results/gpu[-smoke].json)")
    ap.add_argument("--budget-s", type=float, default=7 * 60, help="skip runs that would start after this")
    args = ap.parse_args()
    if args.smoke:  # prove the script needs no wire: the GPU machine has no pyzmq
        sys.modules["zmq"] = None  # type: ignore[assignment]
    import torch

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    models = SMOKE_MODELS if args.smoke else {k: MODELS[k] for k in (args.models or DEFAULT_MODELS).split(",")}
    steps = args.steps or (3 if args.smoke else 40)
    rounds = args.rounds or (1 if args.smoke else 2)
    dtype = "bf16"  # the GPU settings, on the CPU too with --smoke: bf16 weights, autocast, Trainer bf16
    rows = benchlib.load_rows(n=2048)
    peak = peak_tflops()
    result: dict = {"versions": benchlib.versions(), "device": device, "smoke": args.smoke, "steps": steps,
                    "rounds": rounds, "peak_bf16_tflops": peak, "runs": []}
    deadline = time.monotonic() + args.budget_s  # stay inside the device slot: skip what would not fit
    out_path = args.out or benchlib.RESULTS / ("gpu-smoke.json" if args.smoke else "gpu.json")
    for model_name, overrides in models.items():
        for method in ("prompt_tuning", "prefix_tuning"):
            if time.monotonic() > deadline:
                print(f"skipped {model_name} {method}: out of time", flush=True)
                continue
            job = JobSpec(method=method, family="llama", overrides=overrides, rows=len(rows),
                          batch_size=4 if args.smoke else 16, max_length=128 if args.smoke else 512, steps=steps,
                          lr=3e-2, dtype=dtype, model_dtype=dtype, device=device)
            t0 = time.monotonic()
            frozen = benchlib.frozen_model(job)
            load_s = time.monotonic() - t0
            benchlib.run_ours(replace(job, steps=2), rows)  # warm-up: kernels, allocator
            ours, peer = [], []
            for i in range(rounds):
                sides = [("ours", benchlib.run_ours, ours), ("peft", benchlib.run_peft_trainer, peer)]
                for name, fn, out in sides if i % 2 == 0 else sides[::-1]:
                    try:
                        out.append(fn(job, rows))
                    except Exception as exc:  # noqa: BLE001 - a peer that fails is reported, not fatal
                        out.append({"error": f"{type(exc).__name__}: {exc}"[:500]})
                        print(f"  {name} failed: {out[-1]['error']}", flush=True)
            run = {"model": model_name, "params": sum(p.numel() for p in frozen.model.parameters()),
                   "method": method, "job": asdict(job) | {"rows": len(rows)}, "load_s": load_s,
                   "samples": {"ours": ours, "peft_trainer": peer}}
            mean_len = _mean_padded_len(frozen, job, rows)
            for side, samples in (("ours", ours), ("peft_trainer", peer)):
                good = [s for s in samples if "error" not in s]
                if not good:
                    continue
                tps = median([s["tokens_per_s"] for s in good])
                run[side] = {"tokens_per_s": tps, "loop_tokens_per_s": median([s["loop_tokens_per_s"] for s in good])}
                if "peak_working_memory_mib" in good[0]:
                    run[side]["peak_working_memory_mib"] = max(s["peak_working_memory_mib"] for s in good)
                    run["weights_mib"] = good[0]["weights_mib"]
                if peak:
                    run[side]["mfu"] = tps * flops_per_token(frozen, mean_len) / (peak * 1e12)
            if "ours" in run and "peft_trainer" in run:
                run["ratio"] = run["ours"]["tokens_per_s"] / run["peft_trainer"]["tokens_per_s"]
            result["runs"].append(run)
            print(_line(run), flush=True)
            benchlib.write_result(out_path, result)  # keep what is done so far
        benchlib._MODELS.clear()  # free this model before the next one
        if device == "cuda":
            torch.cuda.empty_cache()
    path = benchlib.write_result(out_path, result)
    print(f"wrote {path}")


def _mean_padded_len(frozen, job: JobSpec, rows: list[dict]) -> float:
    """Mean tokens per row (input + target + EOS, capped at max_length) plus the virtual tokens."""
    from softprompt_worker.tasks.lm_batching import LMEncoder

    enc = LMEncoder(frozen, job.max_length)
    sample = rows[:256]
    return sum(len(enc.pair(r["input"], r["target"])[0]) for r in sample) / len(sample) + job.num_virtual_tokens


def _line(run: dict) -> str:
    def side(name: str) -> str:
        s = run.get(name)
        if not s:
            return f"{name} failed"
        mem = f", {s['peak_working_memory_mib']:.0f} MiB" if "peak_working_memory_mib" in s else ""
        mfu = f", MFU {100 * s['mfu']:.1f}%" if "mfu" in s else ""
        return f"{name} {s['tokens_per_s']:.0f} tok/s{mfu}{mem}"

    ratio = f"  ratio {run['ratio']:.2f}x (target >= 1.3)" if "ratio" in run else ""
    return f"{run['model']:12s} {run['method']:14s} {side('ours')} | {side('peft_trainer')}{ratio}"


if __name__ == "__main__":
    main()
