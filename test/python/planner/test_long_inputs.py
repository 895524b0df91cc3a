"""bench/memory/long_inputs.py: the committed 8B long-input table (docs/memory.md) is what the planner says
now, and it orders as it must (more memory, NF4 or checkpointing never shorten the longest sequence)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def load_script():
    spec = importlib.util.spec_from_file_location("long_inputs", REPO / "bench" / "memory" / "long_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_table_is_current_and_ordered():
    script = load_script()
    rows = script.table()
    committed = json.loads((REPO / "bench" / "results" / "long-inputs.json").read_text())["rows"]
    assert rows == committed, "rerun python bench/memory/long_inputs.py and update docs/memory.md"
    assert script.markdown(rows) in (REPO / "docs" / "memory.md").read_text()
    by = {(r["method"], r["weights"], r["gradient_checkpointing"]): r for r in rows}
    for (method, weights, ckpt), r in by.items():
        assert 0 < r["24 GB"] < r["80 GB"], (method, weights, ckpt)
        assert by[(method, "nf4", ckpt)]["24 GB"] >= by[(method, "bf16", ckpt)]["24 GB"]
        assert by[(method, weights, True)]["24 GB"] >= by[(method, weights, False)]["24 GB"]
