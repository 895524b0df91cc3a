"""Prompts on a quantized base (not a test): prompt-tune SmolLM2 on each base (f32, int8, NF4) and evaluate
every prompt on every base, so the table says what quantizing the frozen model costs, and what a prompt
trained on one base is worth on another (issue 16: "a prompt trained on the quantized base evaluated on
the bf16 base and vice versa").

    OMP_NUM_THREADS=1 .venv/bin/python bench/quantization/cross_eval.py       # ~30 min on one CPU thread
    .venv/bin/python bench/quantization/cross_eval.py --smoke                 # tiny model, seconds (tested)

Task: Debian section classification (data/debian, held out by source package), the quality bench's plain
hand-written format ``Description: ... Section:`` with the section word scored by the classification task
(rank classification over the five sections). Prompt tuning: 16 virtual tokens initialised from the
instruction text, the worker's own training loop; the same rows, seed and steps on every base. bitsandbytes
runs here on its CPU backend; on a GPU the same code runs its CUDA kernels (bench/gpu/sizes.py times them).

Writes bench/results/quantization-cross-eval.json (and a markdown table beside it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "common"))
sys.path.insert(0, str(ROOT / "bench" / "quality"))
import benchlib  # noqa: E402
from prompting_data import CLASSIFY_INSTRUCTIONS, SECTIONS, Formats, balanced, classification_rows, load  # noqa: E402

BASES = (None, "int8", "nf4")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny random model, a few rows and steps")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--eval-per-label", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from softprompt_worker.methods.registry import method_class
    from softprompt_worker.models import ModelSpec, load_frozen_model
    from softprompt_worker.tasks.classification import ClassificationTask
    from softprompt_worker.training.loop import TrainingConfig, train

    model = {"tiny": "llama"} if args.smoke else {"embedded": "smollm2"}
    steps = 2 if args.smoke else args.steps
    per_label = 1 if args.smoke else args.eval_per_label
    bases = {q or "f32": load_frozen_model(ModelSpec.from_dict({**model, "quantization": q, "device": "cpu"}))
             for q in BASES}
    fmt = Formats(next(iter(bases.values())).tokenizer, desc_tokens=56)
    train_rows = classification_rows(balanced(load("classify.train.jsonl"), 40 if not args.smoke else 2), fmt)
    eval_rows = classification_rows(balanced(load("classify.eval.jsonl"), per_label), fmt)
    labels = [" " + s for s in SECTIONS]
    options = {"labels": labels, "max_length": 128}
    config = TrainingConfig(steps=steps, batch_size=8 if not args.smoke else 2, lr=0.1, eval_baseline=False,
                            log_every=max(steps, 1), seed=0)
    method_config = {"num_virtual_tokens": 16, "init": "text", "init_text": CLASSIFY_INSTRUCTIONS["sections"]}
    cls = method_class("prompt_tuning")
    record: dict = {"versions": benchlib.versions("bitsandbytes"), "smoke": args.smoke, "model": model,
                    "steps": steps, "train_rows": len(train_rows), "eval_rows": len(eval_rows),
                    "method_config": method_config, "untuned": {}, "trained_on": {}}
    prompts = {}
    t0 = time.perf_counter()
    for name, frozen in bases.items():
        method = cls(cls.config_class.from_dict(method_config), frozen)
        task = ClassificationTask(method, options, train_rows, eval_rows)
        with torch.no_grad():
            record["untuned"][name] = task.evaluate()
        started = time.perf_counter()
        summary = train(method, task, config)
        prompts[name] = method.soft_state()
        record["trained_on"][name] = {"train_s": time.perf_counter() - started, "final_loss": summary["final_loss"],
                                      "evaluated_on": {}}
        print(f"trained on {name}: loss {summary['final_loss']:.3f} in {time.perf_counter() - started:.0f} s",
              flush=True)
    for trained, state in prompts.items():
        for evaluated, frozen in bases.items():
            method = cls(cls.config_class.from_dict(method_config), frozen)
            method.load_soft_state(state)
            with torch.no_grad():
                metrics = ClassificationTask(method, options, [], eval_rows).evaluate()
            record["trained_on"][trained]["evaluated_on"][evaluated] = metrics
            print(f"  prompt from {trained} on {evaluated}: accuracy {metrics['accuracy']:.3f}", flush=True)
    record["wall_s"] = time.perf_counter() - t0
    out = args.out or benchlib.RESULTS / ("quantization-cross-eval-smoke.json" if args.smoke
                                          else "quantization-cross-eval.json")
    path = benchlib.write_result(out, record)
    path.with_suffix(".md").write_text(table(record), encoding="utf-8")
    print(table(record))
    return record


def table(record: dict) -> str:
    names = list(record["untuned"])
    lines = [f"Prompt tuning {record['model']} for {record['steps']} steps; accuracy on {record['eval_rows']} "
             "held-out rows (chance 0.20). Rows: the base the prompt was trained on; columns: the base it runs on.",
             "", "| prompt \\ base | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|",
             "| untuned | " + " | ".join(f"{record['untuned'][n]['accuracy']:.3f}" for n in names) + " |"]
    for trained in names:
        row = record["trained_on"][trained]["evaluated_on"]
        lines.append(f"| trained on {trained} | " + " | ".join(f"{row[n]['accuracy']:.3f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
