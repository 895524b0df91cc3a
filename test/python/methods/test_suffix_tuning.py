"""Suffix tuning: exact per-row placement, pooling, attention masks, gradients only on the suffix."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.registry import method_class
from softprompt_worker.methods.suffix_tuning import SuffixTuning, SuffixTuningConfig, backbone, pool
from softprompt_worker.models import ModelSpec, load_frozen_model

torch.set_num_threads(1)

TEXTS = ["hi", "a much longer input text", "mid length", "x"]
FAMILIES = ("gpt2", "llama", "bert", "t5", "bart")


@pytest.fixture(scope="module", params=FAMILIES)
def frozen(request):
    return load_frozen_model(ModelSpec(tiny=request.param))


def _method(frozen, **options) -> SuffixTuning:
    torch.manual_seed(0)
    return SuffixTuning(SuffixTuningConfig.from_dict({"num_virtual_tokens": 3, **options}), frozen)


def _reference_embedding(method: SuffixTuning, text: str) -> torch.Tensor:
    """One text, no padding, suffix placed by hand with torch.cat: what the batched gather must match."""
    ids = method.frozen.tokenizer(text, return_tensors="pt")["input_ids"][0]  # (L,)
    cut = len(ids) - method.trailing_specials
    table = method.frozen.input_embeddings()
    embeds = torch.cat([table(ids[:cut]), method.suffix, table(ids[cut:])]).unsqueeze(0)  # (1, L + k, H)
    mask = torch.ones(embeds.shape[:2], dtype=torch.long)  # (1, L + k)
    if method.config.attention == "bidirectional":
        mask = torch.zeros(1, 1, embeds.shape[1], embeds.shape[1])  # (1, 1, L + k, L + k): all visible
    hidden = backbone(method.frozen)(inputs_embeds=embeds, attention_mask=mask).last_hidden_state[0]  # (L + k, H)
    k = method.config.num_virtual_tokens
    pooled = {"last": hidden[cut + k - 1], "first": hidden[0], "mean": hidden.mean(0),
              "text_mean": torch.cat([hidden[:cut], hidden[cut + k:]]).mean(0)}[method.config.pooling]  # (H,)
    return torch.nn.functional.normalize(pooled, dim=-1)


@pytest.mark.parametrize("pooling", ["last", "mean", "text_mean", "first"])
def test_batched_embeddings_equal_unbatched_reference_per_row(frozen, pooling):
    causal_text_mean = pooling == "text_mean" and frozen.is_decoder_only
    method = _method(frozen, pooling=pooling, **({"attention": "bidirectional"} if causal_text_mean else {}))
    batch = method.tokenize(TEXTS)
    assert batch["attention_mask"].sum(1).unique().numel() > 1  # mixed lengths: padding is exercised
    with torch.no_grad():
        batched = method.embed(batch)  # (4, H)
        for row, text in enumerate(TEXTS):
            torch.testing.assert_close(batched[row], _reference_embedding(method, text), atol=2e-5, rtol=1e-4)


def test_suffix_sits_after_text_and_before_trailing_specials(frozen):
    method = _method(frozen)
    batch = method.tokenize(TEXTS)
    embeds, mask, suffix_end = method.inject(batch["input_ids"], batch["attention_mask"])
    table = frozen.input_embeddings()
    lengths = batch["attention_mask"].sum(1)
    k = method.config.num_virtual_tokens
    for row in range(len(TEXTS)):
        p = int(lengths[row]) - method.trailing_specials
        torch.testing.assert_close(embeds[row, p:p + k], method.suffix.detach(), atol=0, rtol=0)
        torch.testing.assert_close(embeds[row, :p], table(batch["input_ids"][row, :p]), atol=0, rtol=0)
        tail = batch["input_ids"][row, p:int(lengths[row])]
        torch.testing.assert_close(embeds[row, p + k:int(lengths[row]) + k], table(tail), atol=0, rtol=0)
        assert int(suffix_end[row]) == p + k - 1
        assert mask[row].tolist() == [1] * (int(lengths[row]) + k) + [0] * (mask.shape[1] - int(lengths[row]) - k)
    expected_trailing = {"gpt2": 0, "llama": 0, "bert": 1, "t5": 1, "bart": 1}[frozen.spec.tiny]
    assert method.trailing_specials == expected_trailing


def test_only_the_suffix_gets_gradients(frozen):
    method = _method(frozen)
    assert [name for name, _ in method.named_parameters()] == ["suffix"]
    embeddings = method.embed(method.tokenize(TEXTS))  # (4, H)
    # A random direction, not .sum(): the sum of a LayerNorm'd, normalised vector is constant.
    (embeddings @ torch.randn(embeddings.shape[1], generator=torch.Generator().manual_seed(0))).sum().backward()
    assert method.suffix.grad is not None and method.suffix.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in frozen.model.parameters())


def test_cached_text_path_matches_the_inline_layout_in_value_and_gradient(frozen):
    """Decoder + causal + last pooling runs the text once without a graph and only the suffix with one;
    the embedding and the suffix's gradient must equal the inline text + suffix pass."""
    method = _method(frozen)
    assert method.text_is_suffix_independent() == (frozen.spec.tiny in ("gpt2", "llama"))
    assert not _method(frozen, pooling="mean").text_is_suffix_independent()
    if frozen.is_decoder_only:
        assert not _method(frozen, attention="bidirectional").text_is_suffix_independent()
    batch = method.tokenize(TEXTS)
    fast = method.embed(batch)  # (4, H)
    direction = torch.randn(fast.shape[1], generator=torch.Generator().manual_seed(1))  # (H,)
    (grad_fast,) = torch.autograd.grad((fast @ direction).square().sum(), method.suffix)
    hidden, mask, end = method.hidden_states(batch["input_ids"], batch["attention_mask"])
    inline = torch.nn.functional.normalize(pool(hidden, mask, "last", end).float(), dim=-1)  # (4, H)
    (grad_inline,) = torch.autograd.grad((inline @ direction).square().sum(), method.suffix)
    torch.testing.assert_close(fast, inline, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(grad_fast, grad_inline, atol=1e-5, rtol=1e-3)
    assert grad_fast.abs().sum() > 0


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_bidirectional_mask_is_honoured_by_sdpa_and_eager(family):
    sdpa = load_frozen_model(ModelSpec(tiny=family))
    method = _method(sdpa, attention="bidirectional")
    ref = _method(sdpa, attention="bidirectional", pooling="first")
    causal = _method(sdpa, pooling="first")
    batch, changed = method.tokenize(["abc def", "xy"]), method.tokenize(["abc dez", "xy"])
    with torch.no_grad():
        # Under a bidirectional mask the first position sees a later change; under causal it cannot.
        assert not torch.allclose(ref.embed(batch)[0], ref.embed(changed)[0])
        torch.testing.assert_close(causal.embed(batch)[0], causal.embed(changed)[0])
        for row, text in enumerate(["abc def", "xy"]):
            torch.testing.assert_close(method.embed(batch)[row], _reference_embedding(method, text), atol=2e-5,
                                       rtol=1e-4)
        # Eager attention adds the mask to the scores; it must give what SDPA gives.
        sdpa.model.set_attn_implementation("eager")
        try:
            eager_out = method.embed(batch)
        finally:
            sdpa.model.set_attn_implementation("sdpa")
        torch.testing.assert_close(eager_out, method.embed(batch), atol=2e-5, rtol=1e-4)


def test_registry_and_config_validation():
    assert method_class("suffix_tuning") is SuffixTuning
    config = SuffixTuningConfig.from_dict({})
    assert (config.num_virtual_tokens, config.attention, config.pooling, config.normalize) == (16, "model", "last",
                                                                                              True)
    for bad in ({"pooling": "max"}, {"attention": "causal"}, {"num_virtual_tokens": 0}, {"init": "text"},
                {"init_text": "hi"}, {"max_length": 0}, {"suffix_len": 3}):
        with pytest.raises(InvalidArgumentError):
            SuffixTuningConfig.from_dict(bad)
    bert = load_frozen_model(ModelSpec(tiny="bert"))
    with pytest.raises(InvalidArgumentError, match="bidirectional"):
        SuffixTuning(SuffixTuningConfig(attention="bidirectional"), bert)


def test_text_init_and_soft_state_round_trip():
    frozen = load_frozen_model(ModelSpec(tiny="gpt2"))
    method = SuffixTuning(SuffixTuningConfig(num_virtual_tokens=4, init="text", init_text="ab"), frozen)
    table = frozen.input_embeddings().weight
    torch.testing.assert_close(method.suffix.detach(), table[[97, 98, 97, 98]])
    other = _method(frozen, num_virtual_tokens=4)
    other.load_soft_state(method.soft_state())
    assert torch.equal(other.suffix, method.suffix)
    with torch.no_grad():
        encoded = method.encode(TEXTS, batch_size=3)  # (4, H), length-sorted batches, input order back
        torch.testing.assert_close(encoded, method.embed(method.tokenize(TEXTS)), atol=2e-5, rtol=1e-4)


def test_long_texts_are_truncated_to_leave_room_for_the_suffix():
    frozen = load_frozen_model(ModelSpec(tiny="gpt2"))  # 256 positions
    method = _method(frozen, num_virtual_tokens=6)
    batch = method.tokenize(["z" * 1000])
    assert batch["input_ids"].shape[1] == 250
    assert method.embed(batch).shape == (1, frozen.hidden_size)


def test_text_mean_leaves_the_suffix_out_of_the_mean_and_still_trains_it():
    """On an encoder the suffix acts through attention only: the embedding moves with it and the suffix gets
    a gradient; under causal attention no text position sees the suffix, so text_mean is refused."""
    frozen = load_frozen_model(ModelSpec(tiny="bert"))
    method = _method(frozen, pooling="text_mean")
    batch = method.tokenize(TEXTS)
    method.embed(batch).sum().backward()
    assert method.suffix.grad is not None and method.suffix.grad.abs().sum() > 0
    with torch.no_grad():
        mean = _method(frozen, pooling="mean").embed(batch)  # the same suffix (seeded), averaged in
        assert not torch.allclose(method.embed(batch), mean)
    with pytest.raises(InvalidArgumentError, match="pooling: 'text_mean' leaves the suffix out"):
        _method(load_frozen_model(ModelSpec(tiny="gpt2")), pooling="text_mean")
