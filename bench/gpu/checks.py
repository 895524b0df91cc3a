"""GPU readiness checks (not a test, not a benchmark): what only a GPU can show, each check reported apart.

    python bench/gpu/checks.py --out /tmp/gpu-checks.json      # on a CUDA machine, ~1 minute
    python bench/gpu/checks.py --smoke                         # the same code on the CPU, tiny sizes

1. ``methods``: every method trains a few steps on the device with ``auto`` dtypes (bf16 weights, bf16
   autocast on a card with native bf16; ``--smoke`` asks for bf16 explicitly, so CI's CPU run is the bf16
   matrix too): finite, falling losses, frozen weights bit-identical; then its inference path runs
   (generate / classify / embed / rerank) and gives finite numbers.
2. ``syncs``: one training step per method under ``torch.cuda.set_sync_debug_mode("warn")``; each
   synchronizing operation is attributed to the Python line that asked for it: softprompt's code, or
   transformers' (the CPU probe, test/python/test_host_syncs.py, covers ours in CI).
3. ``flash``: a prefix-tuning step (GQA Llama) with SDPA restricted to the flash kernel, and a prompt-tuning
   step likewise: whether the hot path really reaches flash attention.
4. ``memory``: CUDA peak of a 0.5B-shaped model built on the device (no host copy) and of prompt init on
   a 128k-row embedding table (no full f32 copy).

Writes a JSON record (``--out``, default bench/results/gpu-checks.json; -smoke with --smoke). Needs only
torch, transformers and peft (no pyzmq): the GPU machine has no wire.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import benchlib  # noqa: E402

PACKAGE = str(benchlib.ROOT / "python" / "softprompt_worker")
GEN_ROWS = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello there", "kite", "moon", "sun", "tea")]
CLS_ROWS = [{"input": t, "label": y} for t, y in (("good day", "yes"), ("bad", "no"), ("fine", "yes"), ("awful", "no"))]
PAIRS = [{"query": q, "positive": p, "negatives": ["unrelated text here"]}
         for q, p in (("red fruit", "an apple is red"), ("sky colour", "the sky is blue"), ("x", "letters x y"),
                      ("cat", "a cat sits"))]
# (method, method config, task, task options, rows, family, model overrides)
CASES = {
    "prompt/generation/llama": ("prompt_tuning", {"num_virtual_tokens": 4}, "generation", {}, GEN_ROWS, "llama"),
    "prompt/classification/gpt2": ("prompt_tuning", {"num_virtual_tokens": 4}, "classification",
                                   {"labels": ["yes", "no"], "loss": "ranking"}, CLS_ROWS, "gpt2"),
    "prefix/generation/llama": ("prefix_tuning", {"num_virtual_tokens": 4}, "generation", {}, GEN_ROWS, "llama"),
    "prefix+mlp/generation/t5": ("prefix_tuning", {"num_virtual_tokens": 4, "prefix_projection": True},
                                 "generation", {}, GEN_ROWS, "t5"),
    "prefix/generation/bart": ("prefix_tuning", {"num_virtual_tokens": 4}, "generation", {}, GEN_ROWS, "bart"),
    "suffix/embedding/llama": ("suffix_tuning", {"num_virtual_tokens": 4}, "embedding", {}, PAIRS, "llama"),
    "suffix/embedding+gradcache/gpt2": ("suffix_tuning", {"num_virtual_tokens": 4}, "embedding",
                                        {"grad_cache_mini_batch": 2}, PAIRS, "gpt2"),
    "suffix/embedding/bert": ("suffix_tuning", {"num_virtual_tokens": 4, "pooling": "mean"}, "embedding", {},
                              PAIRS, "bert"),
    "passage/reranking/llama": ("passage_tuning", {"num_virtual_tokens": 4}, "reranking", {}, PAIRS, "llama"),
}
WIDTH = {"gpt2": {"n_embd": 256, "n_head": 4, "initializer_range": 0.1},
         "llama": {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 8, "num_key_value_heads": 2,
                   "initializer_range": 0.1},
         "t5": {"d_model": 256, "d_kv": 32, "num_heads": 8}, "bart": {"d_model": 256, "init_std": 0.1},
         "bert": {"hidden_size": 256, "num_attention_heads": 4}}


def precision(device: str) -> str:
    """``auto`` on a GPU (bf16 where native: what users get); bf16 named outright on the CPU, where ``auto``
    would mean f32 and the smoke run would not exercise the GPU's dtypes."""
    return "auto" if device == "cuda" else "bf16"


def build(case: str, device: str, smoke: bool):
    import torch
    from softprompt_worker.methods.registry import method_class
    from softprompt_worker.models import ModelSpec, load_frozen_model
    from softprompt_worker.tasks.registry import task_class

    method_name, method_config, task_name, options, rows, family = CASES[case]
    overrides = {} if smoke else WIDTH[family]
    frozen = load_frozen_model(ModelSpec(tiny=family, device=device, dtype=precision(device), overrides=overrides))
    torch.manual_seed(0)
    cls = method_class(method_name)
    method = cls(cls.config_class.from_dict(method_config), frozen)
    task = task_class(task_name)(method, options, rows, rows)
    return frozen, method, task


def check_methods(device: str, smoke: bool) -> dict:
    import torch
    from softprompt_worker.training.loop import TrainingConfig, train

    out = {}
    for case in CASES:
        try:
            frozen, method, task = build(case, device, smoke)
            before = {n: p.detach().clone() for n, p in frozen.model.named_parameters()}
            events: list[dict] = []
            summary = train(method, task, TrainingConfig(steps=12, batch_size=len(task.train_rows), lr=0.05,
                                                         log_every=1, schedule="constant", dtype=precision(device)),
                            emit=events.append)
            losses = [e["loss"] for e in events if e["event"] == "step"]
            started = next(e for e in events if e["event"] == "started")
            frozen_same = all(torch.equal(p, before[n]) for n, p in frozen.model.named_parameters())
            out[case] = {"dtype": started["dtype"], "weights": str(frozen.dtype).removeprefix("torch."),
                         "first_loss": losses[0], "last_loss": losses[-1],
                         "finite": all(math.isfinite(x) for x in losses), "falls": losses[-1] < losses[0],
                         "frozen_bit_identical": frozen_same, "metrics": summary["metrics"],
                         "inference": inference(case, frozen, method)}
        except Exception as exc:  # noqa: BLE001 - one failing case is a finding, not the end of the run
            out[case] = {"error": f"{type(exc).__name__}: {exc}"[:600], "trace": traceback.format_exc()[-1500:]}
        print(f"methods {case}: {out[case]}", flush=True)
    return out


def inference(case: str, frozen, method) -> dict:
    """The method's serving path once: finite outputs of the right shape."""
    import torch
    from softprompt_worker.inference.generation import GenerationOptions, classify, generate
    from softprompt_worker.inference.scoring import score_candidates

    method.eval()
    with torch.no_grad():
        if method.name == "suffix_tuning":
            vectors = method.encode(["a query", "a longer passage of text"])
            return {"embed_shape": list(vectors.shape), "finite": bool(torch.isfinite(vectors).all())}
        if method.name == "passage_tuning":
            scores = score_candidates(frozen, method, ["red fruit"], [["an apple", "a car", "the sky"]])
            return {"rerank_scores": [round(float(x), 3) for x in scores[0].log_likelihood]}
        rows = [method.injection()] * 2
        if "classification" in case:
            best, scores = classify(frozen, rows, ["good", "bad"], ["yes", "no"])
            return {"classify": best, "finite": all(math.isfinite(x) for r in scores for x in r)}
        texts = generate(frozen, rows, ["abc=", "kite="], GenerationOptions(max_new_tokens=4))
        return {"generated": texts}


def check_syncs(device: str, smoke: bool) -> dict:
    """Synchronizing CUDA operations in one training step, by the file of the line that caused them."""
    import torch

    if device != "cuda":
        return {"skipped": "needs CUDA (the CPU probe is test/python/test_host_syncs.py)"}
    out = {}
    for case in CASES:
        try:
            frozen, method, task = build(case, device, smoke)
            batch = next(iter(task.batches(len(task.train_rows), torch.Generator().manual_seed(0))))
            with torch.autocast("cuda", dtype=torch.bfloat16):  # warm-up outside the probe
                loss, _ = task.loss(batch)
            loss.backward()
            method.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        loss, _ = task.loss(batch)
                    loss.backward()
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            where: dict[str, int] = {}
            for w in caught:
                if "synchroniz" not in str(w.message):
                    continue
                key = ("ours " + Path(w.filename).name if w.filename.startswith(PACKAGE)
                       else "transformers " + Path(w.filename).name if "/transformers/" in w.filename
                       else "other " + w.filename)
                where[f"{key}:{w.lineno}"] = where.get(f"{key}:{w.lineno}", 0) + 1
            out[case] = {"ours": sum(n for k, n in where.items() if k.startswith("ours")),
                         "total": sum(where.values()), "where": where}
        except Exception as exc:  # noqa: BLE001
            out[case] = {"error": f"{type(exc).__name__}: {exc}"[:600]}
        print(f"syncs {case}: {out[case]}", flush=True)
    return out


def check_flash(device: str, smoke: bool) -> dict:
    """A training step with SDPA limited to flash attention: does the hot path reach the flash kernel?"""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if device != "cuda":
        return {"skipped": "flash attention is CUDA-only"}
    out = {}
    for case in ("prompt/generation/llama", "prefix/generation/llama", "passage/reranking/llama"):
        try:
            frozen, method, task = build(case, device, smoke)
            batch = next(iter(task.batches(len(task.train_rows), torch.Generator().manual_seed(0))))
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.autocast("cuda", dtype=torch.bfloat16):
                loss, _ = task.loss(batch)
                loss.backward()
            out[case] = {"flash_only_step": "ok", "loss": float(loss)}
        except Exception as exc:  # noqa: BLE001 - "no kernel available" is the finding
            out[case] = {"flash_only_step": f"{type(exc).__name__}: {str(exc)[:300]}"}
        print(f"flash {case}: {out[case]}", flush=True)
    return out


def check_memory(device: str, smoke: bool) -> dict:
    """Peak device memory of building a model on the device, and of prompt init on a large vocabulary."""
    import torch
    from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
    from softprompt_worker.models import ModelSpec, load_frozen_model

    if device != "cuda":
        return {"skipped": "CUDA peaks only"}
    shape = {"hidden_size": 1280, "intermediate_size": 3456, "num_hidden_layers": 24, "num_attention_heads": 20,
             "num_key_value_heads": 4, "vocab_size": 128256}
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    frozen = load_frozen_model(ModelSpec(tiny="llama", device="cuda", dtype="bf16", overrides=shape))
    load_s = time.perf_counter() - t0
    weights = torch.cuda.memory_allocated()
    peak_load = torch.cuda.max_memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = {"params": sum(p.numel() for p in frozen.model.parameters()), "load_s": load_s,
           "weights_mib": weights / 2**20, "load_peak_mib": peak_load / 2**20}
    for init in ("vocab", "random", "text"):
        torch.cuda.reset_peak_memory_stats()
        PromptTuning(PromptTuningConfig(num_virtual_tokens=20, init=init,
                                        init_text="Classify:" if init == "text" else None), frozen)
        out[f"init_{init}_extra_peak_mib"] = (torch.cuda.max_memory_allocated() - weights) / 2**20
    out["embedding_table_f32_mib"] = frozen.model.get_input_embeddings().weight.numel() * 4 / 2**20
    print(f"memory: {out}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="the CPU, tiny sizes: check the script runs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sys.modules["zmq"] = None  # type: ignore[assignment]  # the GPU machine has no wire
    import torch

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    out_path = args.out or benchlib.RESULTS / ("gpu-checks-smoke.json" if args.smoke else "gpu-checks.json")
    result: dict = {"versions": benchlib.versions(), "device": device, "smoke": args.smoke}
    for name, check in (("methods", check_methods), ("syncs", check_syncs), ("flash", check_flash),
                        ("memory", check_memory)):
        t0 = time.perf_counter()
        try:
            result[name] = check(device, args.smoke)
        except Exception as exc:  # noqa: BLE001
            result[name] = {"error": f"{type(exc).__name__}: {exc}"[:600], "trace": traceback.format_exc()[-1500:]}
        result[f"{name}_s"] = time.perf_counter() - t0
        benchlib.write_result(out_path, result)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
