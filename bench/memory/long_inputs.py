"""The longest sequence each method trains on an 8B Llama on one 24 GB and one 80 GB GPU, from the memory
planner (python/softprompt_worker/planner/; no GPU and no weights needed: the model is built on the meta
device).

    python bench/memory/long_inputs.py            # prints the table; writes bench/results/long-inputs.{json,md}

The model has Llama-3-8B's config (hidden 4096, 32 layers, 32 heads, 8 key/value heads, intermediate 14336,
vocab 128256) with 131072 positions (Llama 3.1's), so memory, not the position table, sets the limit.
Batch 1; bf16 activations (CUDA autocast); weights bf16 or NF4; gradient checkpointing off/on; AdamW.
"Sequence" is what each method's job sets: tokens per row (prompt, prefix tuning: ``training.max_length``),
per text (suffix tuning: the query's and the positive's), per passage (passage tuning:
``max_passage_tokens``, with a 64-token query).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

LLAMA3_8B = {"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
             "rope_theta": 500000.0, "tie_word_embeddings": False}
GPUS = {"24 GB": 24 * 2**30, "80 GB": 80 * 2**30}
METHODS = {  # method, task, method config, negatives per row
    "prompt_tuning": ("generation", {"num_virtual_tokens": 20}, 0),
    "prefix_tuning": ("generation", {"num_virtual_tokens": 20}, 0),
    "suffix_tuning": ("embedding", {"num_virtual_tokens": 16}, 0),
    "passage_tuning": ("reranking", {"num_virtual_tokens": 12}, 4),
}
NOTES = {
    "prompt_tuning": "20 prompt vectors; the loss over every position",
    "prefix_tuning": "20 prefix slots per layer",
    "suffix_tuning": "16 suffix vectors; a query and its positive; the text runs without autograd (cached)",
    "passage_tuning": "12 prompt + 8 pooled passage vectors, 64-token query; 5 scored pairs (positive + 4 hard negatives)",
}


def table() -> list[dict]:
    from softprompt_worker.models import ModelSpec
    from softprompt_worker.planner.request import plan_input
    from softprompt_worker.planner.suggest import longest_seq, peak_of, with_seq
    from softprompt_worker.training.loop import TrainingConfig

    rows = []
    for method, (task, method_config, negatives) in METHODS.items():
        for quantization in (None, "nf4"):
            spec = ModelSpec.from_dict({"tiny": "llama", "overrides": LLAMA3_8B, "quantization": quantization})
            for checkpointing in (False, True):
                config = TrainingConfig.from_dict({"batch_size": 1, "gradient_checkpointing": checkpointing})
                inp = plan_input(spec, method, method_config, task, {}, config, "cuda", negatives)
                row = {"method": method, "weights": quantization or "bf16", "gradient_checkpointing": checkpointing}
                for gpu, budget in GPUS.items():
                    seq = longest_seq(inp, budget)
                    row[gpu] = seq
                    row[f"{gpu} peak_bytes"] = peak_of(with_seq(inp, seq)) if seq else None
                rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| method | weights | gradient checkpointing | 24 GB GPU | 80 GB GPU |", "|---|---|---|---:|---:|"]
    for r in rows:
        cells = [f"{r[g]:,}" if r[g] else "does not fit" for g in GPUS]
        lines.append(f"| {r['method']} | {r['weights']} | {'on' if r['gradient_checkpointing'] else 'off'} | "
                     f"{cells[0]} | {cells[1]} |")
    lines.append("")
    lines += [f"- {m}: {note}" for m, note in NOTES.items()]
    return "\n".join(lines)


def main() -> None:
    rows = table()
    text = markdown(rows)
    print(text)
    results = REPO / "bench" / "results"
    (results / "long-inputs.json").write_text(json.dumps({"model": LLAMA3_8B, "batch_size": 1, "gpus": GPUS,
                                                          "rows": rows}, indent=2) + "\n")
    (results / "long-inputs.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
