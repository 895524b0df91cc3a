"""Suffix tuning with ``attention="gated"``: an untrained suffix leaves the encoder's embedding as it is,
training opens the gates, and the installed attention changes nothing for callers that pass no gate."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.suffix_tuning import SuffixTuning, SuffixTuningConfig, pool
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.models.recompute import recomputed_layers

torch.set_num_threads(1)

TEXTS = ["hi", "a much longer input text with more words", "mid length", "x"]


@pytest.fixture(scope="module")
def bert():
    return load_frozen_model(ModelSpec(tiny="bert", device="cpu", overrides={"initializer_range": 0.2}))


@pytest.fixture(scope="module")
def minilm():
    return load_frozen_model(ModelSpec.from_dict({"embedded": "minilm", "device": "cpu"}))


def _gated(frozen, **options) -> SuffixTuning:
    torch.manual_seed(0)
    config = {"num_virtual_tokens": 4, "attention": "gated", "pooling": "text_mean", "init": "random", **options}
    return SuffixTuning(SuffixTuningConfig.from_dict(config), frozen)


def _bare(frozen, texts: list[str], pooling: str) -> torch.Tensor:
    """The encoder with no suffix: ``(B, H)`` normalised, mean over real tokens or the first position."""
    batch = frozen.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = frozen.model(**batch).last_hidden_state  # (B, T, H)
    return torch.nn.functional.normalize(pool(hidden, batch["attention_mask"], pooling.replace("text_", "")), dim=-1)


@pytest.mark.parametrize("pooling", ["text_mean", "first"])
def test_an_untrained_gated_suffix_reproduces_the_bare_encoder(bert, pooling):
    method = _gated(bert, pooling=pooling)
    with torch.no_grad():
        gated = method.embed(method.tokenize(TEXTS))  # (B, H)
    torch.testing.assert_close(gated, _bare(bert, TEXTS, pooling), atol=1e-5, rtol=0)
    with torch.no_grad():  # the open-attention suffix does change it: the gate is what keeps it out
        open_attention = _gated(bert, attention="model").embed(method.tokenize(TEXTS))
    assert (open_attention - gated).abs().max() > 1e-2


def test_minilm_with_an_untrained_gated_suffix_is_minilm(minilm):
    method = _gated(minilm, num_virtual_tokens=8)
    with torch.no_grad():
        gated = method.embed(method.tokenize(TEXTS))  # (B, 384)
    torch.testing.assert_close(gated, _bare(minilm, TEXTS, "mean"), atol=1e-5, rtol=0)


def test_the_gate_gets_gradient_at_once_and_the_suffix_once_the_gate_is_open(bert):
    method = _gated(bert)
    target = torch.randn(len(TEXTS), bert.config.hidden_size, generator=torch.Generator().manual_seed(1))
    (method.embed(method.tokenize(TEXTS)) * target).sum().backward()
    assert method.suffix_gate.grad.abs().min() > 0  # every layer and head
    assert torch.count_nonzero(method.suffix.grad) == 0  # closed gates: the text cannot see the suffix yet
    method.zero_grad()
    with torch.no_grad():
        method.suffix_gate.fill_(0.1)
    (method.embed(method.tokenize(TEXTS)) * target).sum().backward()
    assert method.suffix.grad.abs().sum() > 0 and method.suffix_gate.grad.abs().min() > 0
    assert all(p.grad is None and not p.requires_grad for p in bert.model.parameters())


def test_recomputed_layers_give_the_same_gradients(bert):
    """Activation checkpointing replays the ``suffix_gate`` keyword, so recompute runs the gated attention."""
    method = _gated(bert)
    with torch.no_grad():
        method.suffix_gate.normal_(0, 0.5)
    grads = []
    for recompute in (False, True):
        method.zero_grad()
        with recomputed_layers(bert.model, recompute):
            method.embed(method.tokenize(TEXTS)).square().sum().backward()
        grads.append([method.suffix.grad.clone(), method.suffix_gate.grad.clone()])
    for plain, recomputed in zip(*grads):
        torch.testing.assert_close(recomputed, plain)


def test_the_installed_attention_changes_nothing_without_a_gate(bert):
    batch = bert.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        before = bert.model(**batch).last_hidden_state  # (B, T, H)
        _gated(bert)  # installs the routing on this model's attention modules
        after = bert.model(**batch).last_hidden_state  # (B, T, H)
    assert torch.equal(before, after)


def test_gate_state_round_trips_and_counts_as_trainable(bert):
    method = _gated(bert)
    layers, heads = bert.config.num_hidden_layers, bert.config.num_attention_heads
    assert method.suffix_gate.shape == (layers, heads)
    assert method.num_trainable_parameters() == 4 * bert.config.hidden_size + layers * heads
    with torch.no_grad():
        method.suffix_gate.uniform_(-1, 1)
    copy = _gated(bert)
    copy.load_soft_state(method.soft_state())
    assert torch.equal(copy.suffix_gate, method.suffix_gate)


def test_gated_needs_an_encoder_and_text_only_pooling(bert):
    with pytest.raises(InvalidArgumentError, match="pooling: 'mean'"):
        SuffixTuningConfig.from_dict({"attention": "gated", "pooling": "mean"})
    with pytest.raises(InvalidArgumentError, match="pooling: 'last'"):
        SuffixTuningConfig.from_dict({"attention": "gated"})
    for family in ("llama", "t5"):
        with pytest.raises(InvalidArgumentError, match="applies to encoders"):
            _gated(load_frozen_model(ModelSpec(tiny=family)))
