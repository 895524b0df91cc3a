"""QueryLikelihoodLoss: the NLL and hinge terms against hand computation, masking, argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.losses.query_likelihood import QueryLikelihoodLoss
from softprompt_worker.inference.scoring import Scores

torch.set_num_threads(1)


def test_terms_match_hand_computation_per_token():
    positive = torch.tensor([-4.0, -9.0])  # summed log-likelihoods of 2 queries
    negatives = torch.tensor([[-6.0, -3.0], [-12.0, 0.0]])  # (2, 2); [1, 1] is padding
    mask = torch.tensor([[True, True], [True, False]])
    num_tokens = torch.tensor([2, 3])
    loss_fn = QueryLikelihoodLoss(nll_weight=0.5, margin_weight=2.0, margin=0.5)
    terms = loss_fn.terms(positive, negatives, mask, num_tokens)
    nll = (4 / 2 + 9 / 3) / 2
    # per-token gaps: q0: (-4+6)/2 = 1 -> 0;  (-4+3)/2 = -0.5 -> 1.0;  q1: (-9+12)/3 = 1 -> 0
    hinge = (0 + 1.0 + 0) / 3
    assert math.isclose(terms["nll"].item(), nll, rel_tol=1e-6)
    assert math.isclose(terms["hinge"].item(), hinge, rel_tol=1e-6)
    assert math.isclose(terms["loss"].item(), 0.5 * nll + 2.0 * hinge, rel_tol=1e-6)


def test_sum_scores_use_whole_query_gaps_and_padding_never_counts():
    positive = torch.tensor([-4.0])
    negatives = torch.tensor([[-4.5, 100.0]])
    loss_fn = QueryLikelihoodLoss(nll_weight=0.0, margin=1.0, score="sum")
    hinge = loss_fn.compute_loss_from_scores(positive, negatives, torch.tensor([[True, False]]), torch.tensor([4]))
    assert math.isclose(hinge.item(), 0.5, rel_tol=1e-6)  # gap 0.5 < margin 1.0; the padded 100.0 is ignored


def test_no_negatives_is_pure_nll_and_gradient_pushes_positive_up_negative_down():
    loss_fn = QueryLikelihoodLoss(margin=1.0)
    positive = torch.tensor([-3.0], requires_grad=True)
    negatives = torch.tensor([[-3.0]], requires_grad=True)
    loss_fn.compute_loss_from_scores(positive, negatives, None, torch.tensor([3])).backward()
    assert positive.grad.item() < 0 and negatives.grad.item() > 0  # descent raises positive, lowers negative
    empty = loss_fn.compute_loss_from_scores(torch.tensor([-3.0]), torch.zeros(1, 0), None, torch.tensor([3]))
    assert math.isclose(empty.item(), 1.0, rel_tol=1e-6)


def test_forward_picks_pairs_by_index_from_the_score_fn():
    ll = torch.tensor([-2.0, -5.0, -1.0, -8.0])  # pairs: q0+, q0-, q1+, q1-
    score_fn = lambda batch: Scores(log_likelihood=ll, num_tokens=torch.tensor([1, 1, 2, 2]))  # noqa: E731
    loss_fn = QueryLikelihoodLoss(score_fn, margin=0.0)
    loss = loss_fn(None, torch.tensor([0, 2]), torch.tensor([[1], [3]]))
    assert math.isclose(loss.item(), (2 / 1 + 1 / 2) / 2, rel_tol=1e-6)  # margins hold: hinge is 0


@pytest.mark.parametrize("kwargs, match", [({"margin": -1}, "margin"), ({"nll_weight": "1"}, "nll_weight"),
                                           ({"nll_weight": 0, "margin_weight": 0}, "at least one"),
                                           ({"score": "max"}, "score: 'max'")])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        QueryLikelihoodLoss(**kwargs)
