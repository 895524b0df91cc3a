"""Query-likelihood scoring (UPR) against an independent reference: a plain per-pair loop over the
full model forward on token ids, with no padding, no gather assembly and no logits_to_keep."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError, TooLargeError
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.inference.scoring import HardPrompt, Layout, PairBatch, pair_log_likelihood, score_pairs, tokenize

torch.set_num_threads(1)

QUERIES = ["who wrote the book?", "when", "what is the capital city of the small country?"]
PASSAGES = ["The book was written by Ann.", "Paris.", "A long passage about a small country and its capital, "
            "which is a city by the sea with an old harbour.", "Nothing relevant here at all."]
PAIRS_Q = [0, 0, 1, 2, 2, 2, 1]
PAIRS_P = [0, 1, 3, 2, 0, 1, 2]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def frozen(request):
    return load_frozen_model(ModelSpec(tiny=request.param, seed=3))


def reference_scores(frozen, layout: Layout, pairs_q, pairs_p, queries=QUERIES, passages=PASSAGES):
    """Token-id concatenation per pair, one unpadded full forward each, sum of query log-probs."""
    tok = frozen.tokenizer
    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    out = []
    for qi, pi in zip(pairs_q, pairs_p):
        bos = [tok.bos_token_id] if layout.prepend_bos else []
        passage = enc(layout.passage_prefix) + enc(passages[pi])[:layout.max_passage_tokens]
        instruction = enc(layout.instruction)
        query = enc(layout.query_prefix + queries[qi])[:layout.max_query_tokens]
        context = bos + (passage + instruction if layout.order == "passage_first" else instruction + passage)
        ids = torch.tensor([context + query])
        with torch.no_grad():
            logp = frozen.model(input_ids=ids).logits[0].float().log_softmax(-1)  # (T, vocab)
        start = len(context)
        out.append(sum(logp[start + t - 1, q].item() for t, q in enumerate(query)))
    return torch.tensor(out), torch.tensor([len(enc(layout.query_prefix + queries[q])[:layout.max_query_tokens])
                                            for q in pairs_q])


def _texts(frozen, layout):
    q = tokenize(frozen.tokenizer, QUERIES, prefix=layout.query_prefix, max_tokens=layout.max_query_tokens)
    p = tokenize(frozen.tokenizer, PASSAGES, max_tokens=layout.max_passage_tokens)
    return q, p


@pytest.mark.parametrize("layout", [Layout(), Layout(order="prompt_first", prepend_bos=False),
                                    Layout(max_passage_tokens=7, max_query_tokens=3)], ids=["upr", "prompt_first",
                                                                                             "truncated"])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_upr_scores_equal_reference_loop(frozen, layout, batch_size):
    q, p = _texts(frozen, layout)
    scores = score_pairs(frozen, HardPrompt(frozen, layout), q, p, PAIRS_Q, PAIRS_P, batch_size=batch_size)
    expected, counts = reference_scores(frozen, layout, PAIRS_Q, PAIRS_P)
    torch.testing.assert_close(scores.log_likelihood, expected, atol=2e-4, rtol=1e-5)
    assert torch.equal(scores.num_tokens, counts)
    torch.testing.assert_close(scores.mean_log_likelihood, expected / counts, atol=2e-4, rtol=1e-5)


def test_scores_do_not_depend_on_batch_company(frozen):
    """A pair's score is the same alone and padded next to longer pairs (left padding is masked)."""
    layout = Layout()
    q, p = _texts(frozen, layout)
    cond = HardPrompt(frozen, layout)
    together = pair_log_likelihood(frozen, cond, PairBatch.build(q, p, PAIRS_Q, PAIRS_P, frozen.device))
    for i, (qi, pi) in enumerate(zip(PAIRS_Q, PAIRS_P)):
        alone = pair_log_likelihood(frozen, cond, PairBatch.build(q, p, [qi], [pi], frozen.device))
        torch.testing.assert_close(together.log_likelihood[i], alone.log_likelihood[0], atol=2e-4, rtol=1e-5)


def test_scores_differ_across_passages(frozen):
    """The scores are not constant: different passages give different query likelihoods."""
    layout = Layout()
    q, p = _texts(frozen, layout)
    scores = score_pairs(frozen, HardPrompt(frozen, layout), q, p, [2, 2, 2, 2], [0, 1, 2, 3])
    assert len(set(scores.log_likelihood.tolist())) == 4


def test_rejects_encoder_decoder_and_empty_passages():
    t5 = load_frozen_model(ModelSpec(tiny="t5"))
    with pytest.raises(InvalidArgumentError, match="decoder-only"):
        HardPrompt(t5)
    gpt2 = load_frozen_model(ModelSpec(tiny="gpt2"))
    q = tokenize(gpt2.tokenizer, ["a query"], prefix=" ", max_tokens=8)
    p = tokenize(gpt2.tokenizer, [""], max_tokens=8)
    with pytest.raises(InvalidArgumentError, match="passage has no tokens"):
        score_pairs(gpt2, HardPrompt(gpt2), q, p, [0], [0])
    with pytest.raises(InvalidArgumentError, match="order"):
        HardPrompt(gpt2, Layout(order="sideways"))


def test_rows_past_the_position_table_are_refused_with_the_numbers():
    gpt2 = load_frozen_model(ModelSpec(tiny="gpt2", overrides={"n_positions": 32}))
    q = tokenize(gpt2.tokenizer, ["a query"], prefix=" ", max_tokens=64)
    p = tokenize(gpt2.tokenizer, ["a passage that is far too long for thirty-two positions"], max_tokens=256)
    with pytest.raises(TooLargeError, match="has 32"):
        score_pairs(gpt2, HardPrompt(gpt2), q, p, [0], [0])
