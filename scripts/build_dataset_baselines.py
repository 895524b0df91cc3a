#!/usr/bin/env python3
"""Zero-shot numbers of the embedded models on the held-out (eval) splits of ``data/debian/``.

These are the "untuned baseline" that a soft prompt has to beat; data/README.md records them.
Needs the embedded packages (see ``softprompt_worker.models.embedded``). Runs in a few minutes on 2 cores:

    .venv/bin/python scripts/build_dataset_baselines.py [--only minilm|smollm2] [--threads 2]

- MiniLM (encoder, mean pooling + L2 norm, as the upstream sentence-transformers model):
  retrieval.eval: each synopsis against all 300 eval descriptions -> Recall@1, Recall@5, MRR.
  rerank.eval: each synopsis against its positive + 3 BM25-hard negatives -> accuracy@1, MRR.
- SmolLM2 (causal LM): classify.eval: label = argmax over the five label words of the next-token
  log-probability after a plain-text prompt (every label word is one token; two prompts, see
  CLASSIFY_PROMPTS); generate.eval: mean
  per-token negative log-likelihood of the synopsis given the description.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "debian"
sys.path.insert(0, str(REPO / "python"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Zero-shot accuracy of a 135M model depends a lot on the hand-written prompt: both are measured.
CLASSIFY_PROMPTS = {
    "plain": "Description: {input}\nSection:",
    "listed": ("Debian package description:\n{input}\n\n"
               "Which Debian section is this package in: admin, games, net, science or sound?\nSection:"),
}
GENERATE_PROMPT = "Debian package description:\n{input}\n\nOne-line summary:"


def read(name: str) -> list[dict]:
    with open(DATA / f"{name}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def minilm(batch: int = 32) -> dict:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from softprompt_worker.models.embedded import resolve_embedded

    path = resolve_embedded("minilm")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    @torch.no_grad()
    def embed(texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), batch):
            enc = tok(texts[i:i + batch], padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**enc).last_hidden_state  # (B, T, H)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))  # (B, H)
        return torch.cat(out)

    rows = read("retrieval.eval")
    q, d = embed([r["query"] for r in rows]), embed([r["positive"] for r in rows])
    scores = q @ d.T  # (Q, D); the positive of query i is document i
    rank = (scores > scores.diag().unsqueeze(1)).sum(1)  # (Q,) 0 = first
    result = {"retrieval.eval": {"candidates": len(rows), "recall@1": (rank < 1).float().mean().item(),
                                 "recall@5": (rank < 5).float().mean().item(),
                                 "mrr": (1.0 / (rank + 1)).mean().item()}}
    # Harder: against every distinct eval-split description in the committed files (~1,200).
    corpus = list(dict.fromkeys([r["positive"] for r in rows] + [t for r in read("rerank.eval")
                                                                  for t in [r["positive"], *r["negatives"]]]))
    d_all = torch.cat([d, embed(corpus[len(rows):])])  # the first len(rows) are the positives, in order
    scores = q @ d_all.T  # (Q, corpus)
    rank = (scores > scores.diag().unsqueeze(1)).sum(1)  # diag: score of query i with document i
    result["retrieval.eval@eval-corpus"] = {"candidates": len(corpus), "recall@1": (rank < 1).float().mean().item(),
                                            "recall@5": (rank < 5).float().mean().item(),
                                            "mrr": (1.0 / (rank + 1)).mean().item()}
    rows = read("rerank.eval")
    q = embed([r["query"] for r in rows])
    docs = embed([t for r in rows for t in [r["positive"], *r["negatives"]]]).view(len(rows), -1, q.shape[-1])
    s = torch.einsum("bh,bnh->bn", q, docs)  # (B, 1 + negatives)
    rank = (s[:, 1:] > s[:, :1]).sum(1)
    result["rerank.eval"] = {"candidates": s.shape[1], "accuracy@1": (rank == 0).float().mean().item(),
                             "mrr": (1.0 / (rank + 1)).mean().item()}
    return result


def smollm2(batch: int = 8) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from softprompt_worker.models.embedded import resolve_embedded

    path = resolve_embedded("smollm2")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    tok.padding_side = "left"  # so the last position is the next-token prediction for every row
    rows = read("classify.eval")
    labels = sorted({r["label"] for r in rows})
    ids = [tok(" " + w, add_special_tokens=False)["input_ids"] for w in labels]
    assert all(len(i) == 1 for i in ids), "every label word must be a single token"
    label_ids = torch.tensor([i[0] for i in ids])
    result = {}
    for name, prompt in CLASSIFY_PROMPTS.items():
        correct, predicted = 0, {w: 0 for w in labels}
        with torch.no_grad():
            for i in range(0, len(rows), batch):
                chunk = rows[i:i + batch]
                enc = tok([prompt.format(input=r["input"]) for r in chunk], padding=True, return_tensors="pt")
                logits = model(**enc, logits_to_keep=1).logits[:, -1, label_ids]  # (B, labels)
                for r, p in zip(chunk, logits.argmax(-1).tolist()):
                    correct += labels[p] == r["label"]
                    predicted[labels[p]] += 1
        result[f"classify.eval/{name}"] = {"accuracy": correct / len(rows), "chance": 1 / len(labels),
                                          "predicted": predicted}
    rows = read("generate.eval")
    tok.padding_side = "right"
    nll, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            chunk = rows[i:i + batch]
            prompts = [tok(GENERATE_PROMPT.format(input=r["input"]))["input_ids"] for r in chunk]
            targets = [tok(" " + r["target"] + tok.eos_token, add_special_tokens=False)["input_ids"] for r in chunk]
            width = max(len(p) + len(t) for p, t in zip(prompts, targets))
            input_ids = torch.full((len(chunk), width), tok.pad_token_id)
            labels_t = torch.full((len(chunk), width), -100)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, (p, t) in enumerate(zip(prompts, targets)):
                input_ids[j, :len(p) + len(t)] = torch.tensor(p + t)
                labels_t[j, len(p):len(p) + len(t)] = torch.tensor(t)
                mask[j, :len(p) + len(t)] = 1
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]  # (B, T-1, V)
            gold = labels_t[:, 1:]  # (B, T-1)
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), gold, ignore_index=-100, reduction="sum")
            nll += loss.item()
            count += int((gold != -100).sum())
    result["generate.eval"] = {"target_tokens": count, "nll_per_token": nll / count,
                               "perplexity": float(torch.tensor(nll / count).exp())}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["minilm", "smollm2"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = {}
    for name, fn in (("minilm", minilm), ("smollm2", smollm2)):
        if args.only in (None, name):
            start, cpu = time.perf_counter(), time.process_time()
            out[name] = fn()
            out[name]["seconds"] = round(time.perf_counter() - start, 1)
            out[name]["cpu_seconds"] = round(time.process_time() - cpu, 1)
            print(json.dumps({name: out[name]}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
