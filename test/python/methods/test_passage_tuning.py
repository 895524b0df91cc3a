"""Passage-specific prompt tuning: batched scores equal a hand-built per-pair reference, the slots hold
what the config says, and only the soft prompt and the bottleneck learn."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.passage_tuning import PassageTuning, PassageTuningConfig, adaptive_mean_pool
from softprompt_worker.methods.registry import method_class
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.inference.scoring import HardPrompt, Layout, score_pairs, tokenize

torch.set_num_threads(1)

QUERIES = ["who wrote it?", "where", "a much longer query about a river"]
PASSAGES = ["Ann wrote it.", "The river runs through a long valley with many towns.", "x"]
PAIRS_Q = [0, 0, 1, 2, 2, 1]
PAIRS_P = [0, 1, 2, 1, 0, 0]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def frozen(request):
    return load_frozen_model(ModelSpec(tiny=request.param, seed=1))


def _method(frozen, **options) -> PassageTuning:
    torch.manual_seed(0)
    method = PassageTuning(PassageTuningConfig.from_dict(options), frozen)
    if method.bottleneck is not None:  # move off the identity init so the bottleneck matters
        with torch.no_grad():
            for p in method.bottleneck.parameters():
                p.add_(torch.randn_like(p) * 0.05)
            method.prompt.add_(torch.randn_like(method.prompt) * 0.01)
    return method


def _reference(method: PassageTuning, qi: int, pi: int) -> float:
    """One pair, no padding: embeddings concatenated by hand with torch.cat, full forward, sum log-probs."""
    fz, cfg, tok = method.frozen, method.config, method.frozen.tokenizer
    table = fz.input_embeddings()
    enc = lambda text: torch.tensor(tok(text, add_special_tokens=False)["input_ids"], dtype=torch.long)  # noqa: E731
    passage_ids = enc(PASSAGES[pi])
    passage = table(passage_ids)  # (Lp, H)
    if cfg.passage_vectors == "pooled":
        pooled = torch.nn.functional.adaptive_avg_pool1d(passage.T.unsqueeze(0), cfg.num_passage_vectors)[0].T
        V = method.bottleneck(pooled)  # (m, H)
    elif cfg.passage_vectors == "per_token":
        V = method.bottleneck(passage)  # (Lp, H)
    else:
        V = passage[:0]
    bos = table(torch.tensor([tok.bos_token_id]))  # (1, H)
    prefix = table(enc(cfg.passage_prefix))
    query_ids = enc(cfg.query_prefix + QUERIES[qi])
    parts = [bos, prefix, passage, V, method.prompt] if cfg.order == "passage_first" else \
        [bos, method.prompt, V, prefix, passage]
    context = torch.cat(parts)  # (C, H)
    embeds = torch.cat([context, table(query_ids)]).unsqueeze(0)  # (1, C + Lq, H)
    logp = fz.model(inputs_embeds=embeds).logits[0].log_softmax(-1)  # (C + Lq, vocab)
    return sum(logp[len(context) + t - 1, q].item() for t, q in enumerate(query_ids.tolist()))


@pytest.mark.parametrize("options", [{}, {"passage_vectors": "per_token"}, {"order": "prompt_first"},
                                     {"passage_vectors": "none", "num_virtual_tokens": 5, "init": "vocab"},
                                     {"residual": False, "activation": "tanh", "num_passage_vectors": 20}],
                         ids=["pooled", "per_token", "prompt_first", "none_vocab", "plain_tanh_m20"])
def test_batched_scores_equal_per_pair_reference(frozen, options):
    method = _method(frozen, **options)
    with torch.no_grad():
        scores = method(method.encode_pairs(QUERIES, PASSAGES, PAIRS_Q, PAIRS_P))
        expected = torch.tensor([_reference(method, q, p) for q, p in zip(PAIRS_Q, PAIRS_P)])
    torch.testing.assert_close(scores.log_likelihood, expected, atol=3e-4, rtol=1e-5)


def test_untrained_method_without_passage_vectors_is_upr(frozen):
    """Text init with no passage vectors puts exactly UPR's instruction in the prompt slot."""
    method = PassageTuning(PassageTuningConfig(passage_vectors="none"), frozen)
    q = tokenize(frozen.tokenizer, QUERIES, prefix=" ", max_tokens=64)
    p = tokenize(frozen.tokenizer, PASSAGES, max_tokens=256)
    tuned = score_pairs(frozen, method, q, p, PAIRS_Q, PAIRS_P)
    upr = score_pairs(frozen, HardPrompt(frozen, Layout()), q, p, PAIRS_Q, PAIRS_P)
    assert torch.equal(tuned.log_likelihood, upr.log_likelihood)


def test_residual_bottleneck_starts_as_the_pooled_embeddings(frozen):
    method = PassageTuning(PassageTuningConfig(num_passage_vectors=4), frozen)
    batch = method.encode_pairs(QUERIES, PASSAGES, PAIRS_Q, PAIRS_P)
    embeds = frozen.input_embeddings()(batch.passage_ids)  # (P, Lp, H)
    vectors, counts = method.passage_vectors(embeds, batch.passage_lengths)
    assert vectors.shape[1] == 4 and counts.tolist() == [4] * len(PASSAGES)
    torch.testing.assert_close(vectors, adaptive_mean_pool(embeds, batch.passage_lengths, 4))


def test_adaptive_mean_pool_matches_torch_per_row():
    x = torch.randn(3, 9, 5)
    lengths = torch.tensor([9, 2, 5])
    for m in (1, 3, 4, 7):
        pooled = adaptive_mean_pool(x, lengths, m)  # (3, m, 5)
        for row, n in enumerate(lengths.tolist()):
            ref = torch.nn.functional.adaptive_avg_pool1d(x[row, :n].T.unsqueeze(0), m)[0].T  # (m, 5)
            torch.testing.assert_close(pooled[row], ref)


def test_only_prompt_and_bottleneck_get_gradients_and_base_stays_bit_identical(frozen):
    method = _method(frozen, passage_vectors="per_token")
    base = {n: p.detach().clone() for n, p in frozen.model.named_parameters()}
    assert {n for n, _ in method.named_parameters()} == {"prompt", "bottleneck.down.weight", "bottleneck.down.bias",
                                                           "bottleneck.up.weight", "bottleneck.up.bias"}
    optimizer = torch.optim.AdamW(method.parameters(), lr=1e-2)
    batch = method.encode_pairs(QUERIES, PASSAGES, PAIRS_Q, PAIRS_P)
    for _ in range(2):
        loss = -method(batch).log_likelihood.mean()
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())
        assert all(p.grad is None for p in frozen.model.parameters())
        optimizer.step()
        optimizer.zero_grad()
    for name, p in frozen.model.named_parameters():
        assert torch.equal(p, base[name]), name


def test_soft_state_round_trips_and_config_is_validated(frozen):
    method = _method(frozen)
    other = PassageTuning(PassageTuningConfig(), frozen)
    other.load_soft_state(method.soft_state())
    batch = method.encode_pairs(QUERIES, PASSAGES, PAIRS_Q, PAIRS_P)
    with torch.no_grad():
        assert torch.equal(method(batch).log_likelihood, other(batch).log_likelihood)
    assert method_class("passage_tuning") is PassageTuning
    assert PassageTuningConfig.from_dict(PassageTuningConfig().to_dict()) == PassageTuningConfig()
    for bad, match in (({"passage_vectors": "all"}, "passage_vectors: 'all'"), ({"bottleneck_dim": 0}, "bottleneck_dim"),
                       ({"init": "vocab"}, "num_virtual_tokens"), ({"order": "x"}, "order: 'x'"),
                       ({"max_query_tokens": 0}, "max_query_tokens"), ({"rank": 3}, "unknown field")):
        with pytest.raises(InvalidArgumentError, match=match):
            PassageTuningConfig.from_dict(bad)
    with pytest.raises(InvalidArgumentError, match="decoder-only"):
        PassageTuning(PassageTuningConfig(), load_frozen_model(ModelSpec(tiny="bart")))


def test_init_is_spelled_like_the_other_methods_and_the_old_names_still_load():
    """``prompt_init`` / ``prompt_init_text`` were renamed ``init`` / ``init_text``: old job files keep working
    (mapped, with a warning), giving both spellings of one option is refused."""
    old = PassageTuningConfig.from_dict({"prompt_init": "vocab", "num_virtual_tokens": 3, "prompt_init_text": "Ask:"})
    assert old == PassageTuningConfig.from_dict({"init": "vocab", "num_virtual_tokens": 3, "init_text": "Ask:"})
    assert "prompt_init" not in old.to_dict() and old.to_dict()["init"] == "vocab"
    for both in ({"prompt_init": "text", "init": "text"}, {"prompt_init_text": "a", "init_text": "b"}):
        with pytest.raises(InvalidArgumentError, match="deprecated alias"):
            PassageTuningConfig.from_dict(both)
    with pytest.raises(InvalidArgumentError, match="init: 'random'"):
        PassageTuningConfig.from_dict({"prompt_init": "random"})


def test_a_checkpoint_written_before_the_rename_loads(tmp_path):
    """A checkpoint file whose saved method config says ``prompt_init`` / ``prompt_init_text`` (as every
    passage-tuning checkpoint written before the rename does) rebuilds the same method."""
    import json

    from softprompt_worker.training.checkpoints import build_method_from_checkpoint, load_checkpoint, save_checkpoint

    frozen = load_frozen_model(ModelSpec(tiny="gpt2", seed=1))
    method = _method(frozen, num_virtual_tokens=3, passage_vectors="none", init="vocab", init_text="Ask:")
    old = method.config.to_dict()
    old["prompt_init"], old["prompt_init_text"] = old.pop("init"), old.pop("init_text")
    config = method.config
    config.to_json = lambda: json.dumps(old, sort_keys=True)  # the pre-rename spelling, written to the file
    path = save_checkpoint(tmp_path / "old.pb", method, step=1)
    del config.to_json
    record = load_checkpoint(path)
    assert record.method_config["prompt_init"] == "vocab" and "init" not in record.method_config
    rebuilt = build_method_from_checkpoint(record, frozen)
    assert rebuilt.config == method.config
    assert torch.equal(rebuilt.prompt, method.prompt)
