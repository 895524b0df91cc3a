"""bench/results/quality-embedding.md from the result record: one table per corpus and what it means.

Every sentence of the reading is computed from the record (who wins, the gap to LoRA), never typed in.
"""

from __future__ import annotations

from typing import Any

from embedding_eval import REPORTED

LABELS = {
    "bm25": "BM25 (k1 1.2, b 0.75)",
    "untuned-mean": "SmolLM2 untuned, mean pooling",
    "untuned-last": "SmolLM2 untuned, last-token pooling",
    "suffix-init": "SmolLM2 + hand-written suffix (the init text, untrained)",
    "suffix_tuning": "**SmolLM2 + suffix tuning (ours)**, lr fixed",
    "suffix_tuning-dev": "**SmolLM2 + suffix tuning (ours)**, lr chosen on dev",
    "lora": "SmolLM2 + LoRA (PEFT; init text as plain text; same loop/loss/rows/steps), lr fixed",
    "lora-dev": "SmolLM2 + LoRA (same), lr chosen on dev",
    "minilm": "MiniLM-L6 untuned (reference: purpose-trained embedder)",
}


def markdown(record: dict[str, Any]) -> str:
    cfg, data, rows = record["config"], record["data"], record["rows"]
    by_name = {r["method"]: r for r in rows}
    lines = [
        "# Embedding quality: suffix tuning vs baselines (Debian synopsis -> description retrieval)",
        "",
        f"{record['date']}, {record['machine'].get('cpu', '?')}, torch threads "
        f"{record['machine'].get('torch_threads', '?')}; whole run {record['wall_seconds'] / 60:.1f} min. "
        f"{data['queries']} eval queries (retrieval.eval), every text cut to its first {data['max_tokens']} "
        f"SmolLM2 tokens; {cfg['steps']} steps x batch {cfg['batch_size']} = {data['train_rows']} training pairs "
        f"(retrieval.train, split by source package), InfoNCE with in-batch negatives, temperature "
        f"{cfg['temperature']}. Suffix: {cfg['suffix_tokens']} vectors, lr {cfg['suffix_lr']}; LoRA: r "
        f"{cfg['lora']['r']}, alpha {cfg['lora']['alpha']}, {'/'.join(cfg['lora']['target_modules'])}, lr "
        f"{cfg['lora_lr']} (fixed a priori); the `lr chosen on dev` rows: {_selection(record)}. "
        "Nothing is tuned on eval.",
        "",
    ]
    for corpus, size in data["corpora"].items():
        lines += [f"## Corpus `{corpus}`: {size} documents", "",
                  "| method | trainable params | " + " | ".join(REPORTED) + " | train s | embed s |",
                  "| --- | ---: | " + " | ".join("---:" for _ in REPORTED) + " | ---: | ---: |"]
        for r in rows:
            values = " | ".join(f"{r['metrics'][corpus][m]:.3f}" for m in REPORTED)
            trained = f"{r['train_seconds']:.0f}" if "train_seconds" in r else "-"
            lines.append(f"| {LABELS.get(r['method'], r['method'])} | {r['trainable_params']:,} | {values} | "
                         f"{trained} | {r['eval_seconds']:.0f} |")
        lines.append("")
    lines += ["## Reading", "", *reading(by_name, data["corpora"]), ""]
    return "\n".join(lines)


def _selection(record: dict[str, Any]) -> str:
    """``suffix_tuning: lr 0.003 / 0.01 / 0.03 scored 0.61 / 0.66 / 0.70 -> 0.03; lora: ...`` from the record."""
    parts = []
    for name, sel in record["lr_selection"].items():
        scores = " / ".join(f"{r['metrics'][sel['metric']]:.3f}" for r in sel["dev"])
        parts.append(f"{name} lr {' / '.join(f'{lr:g}' for lr in sel['candidates'])} scored {sel['metric']} "
                     f"{scores} on {record['data']['dev_queries']} dev queries (TRAIN split), chose {sel['chosen_lr']:g}")
    return "; ".join(parts)


def reading(by_name: dict[str, dict], corpora: dict[str, int]) -> list[str]:
    """3-6 lines computed from the numbers."""
    corpus = list(corpora)[-1]  # the hardest corpus

    def score(name: str) -> float:
        return by_name[name]["metrics"][corpus]["ndcg@10"]

    ours, lora = score("suffix_tuning-dev"), score("lora-dev")  # both lrs chosen on the dev slice
    ours_fixed, lora_fixed = score("suffix_tuning"), score("lora")
    ceiling = score("minilm")
    peers = [n for n in ("bm25", "untuned-mean", "untuned-last", "suffix-init") if n in by_name]
    beaten = [n for n in peers if ours > score(n)]
    lost = [n for n in peers if ours <= score(n)]
    best_untuned = max(("untuned-mean", "untuned-last", "suffix-init"), key=score)
    ratio = by_name["lora"]["trainable_params"] / max(by_name["suffix_tuning"]["trainable_params"], 1)
    lines = [
        f"- nDCG@10 on `{corpus}`, learning rates chosen on dev: suffix tuning {ours:.3f}, LoRA {lora:.3f}; "
        f"with the a priori lrs: suffix tuning {ours_fixed:.3f}, LoRA {lora_fixed:.3f}. The rest below compares "
        "the dev-chosen rows.",
        f"- Best untuned SmolLM2 "
        f"({best_untuned}) {score(best_untuned):.3f}, BM25 {score('bm25'):.3f}, MiniLM {score('minilm'):.3f}.",
        f"- Suffix tuning beats {', '.join(beaten) or 'none of the baselines'}"
        + (f"; it does not beat {', '.join(lost)}." if lost else "."),
        f"- Against LoRA: {ours / lora:.0%} of LoRA's nDCG@10 ({ours - lora:+.3f}) with "
        f"{by_name['suffix_tuning']['trainable_params']:,} trainable parameters vs LoRA's "
        f"{by_name['lora']['trainable_params']:,} ({ratio:.0f}x fewer)." if lora > 0 else
        "- LoRA scored 0: no ratio.",
        f"- Both start from the same cue (the suffix's init text, {score('suffix-init'):.3f}); "
        f"{by_name['lora']['steps']} steps of training add {ours - score('suffix-init'):+.3f} nDCG@10 for the "
        f"suffix and {lora - score('suffix-init'):+.3f} for LoRA.",
        f"- MiniLM (reference, trained for retrieval on ~1B pairs) scores {ceiling:.3f}: suffix tuning is "
        + (f"{ceiling - ours:.3f} below it." if ours < ceiling else f"{ours - ceiling:.3f} above it."),
    ]
    return lines
