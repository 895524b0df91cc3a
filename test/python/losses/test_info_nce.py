"""InfoNCE against a hand-written reference, and GradCache against plain full-batch gradients."""

from __future__ import annotations

import math

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.losses import CachedInfoNCELoss, InfoNCELoss
from softprompt_worker.methods.suffix_tuning import SuffixTuning, SuffixTuningConfig
from softprompt_worker.models import ModelSpec, load_frozen_model

torch.set_num_threads(1)


def _reference(q, p, n, temperature, symmetric):
    """Per-row loop: -log softmax of the own positive among all positives and negatives (cosine / T)."""
    cands = torch.cat([p, n]) if n is not None else p
    total = 0.0
    for i in range(q.shape[0]):
        sims = torch.stack([torch.cosine_similarity(q[i], c, dim=0) for c in cands]) / temperature
        total += -(sims[i] - torch.logsumexp(sims, 0))
    loss = total / q.shape[0]
    if symmetric:
        back = 0.0
        for i in range(q.shape[0]):
            sims = torch.stack([torch.cosine_similarity(p[i], x, dim=0) for x in q]) / temperature
            back += -(sims[i] - torch.logsumexp(sims, 0))
        loss = (loss + back / q.shape[0]) / 2
    return loss


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("negatives", [0, 5])
def test_matches_reference(symmetric, negatives):
    g = torch.Generator().manual_seed(0)
    q, p = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    n = torch.randn(negatives, 8, generator=g) if negatives else None
    loss = InfoNCELoss(temperature=0.05, symmetric=symmetric).compute_loss_from_embeddings(q, p, n)
    torch.testing.assert_close(loss, _reference(q, p, n, 0.05, symmetric), atol=1e-4, rtol=1e-5)


def test_loss_orders_good_and_bad_embeddings():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(6, 16, generator=g)
    loss_fn = InfoNCELoss()
    perfect = loss_fn.compute_loss_from_embeddings(q, q.clone())
    shuffled = loss_fn.compute_loss_from_embeddings(q, q.roll(1, dims=0))
    assert perfect < 0.05 < math.log(6) < shuffled
    # Scale: at temperature 1 the logits are cosines in [-1, 1], so the loss of identical pairs stays large.
    assert InfoNCELoss(temperature=1.0).compute_loss_from_embeddings(q, q.clone()) > 1.0


def test_rejects_bad_arguments():
    with pytest.raises(InvalidArgumentError):
        InfoNCELoss(temperature=0)
    with pytest.raises(InvalidArgumentError):
        InfoNCELoss().compute_loss_from_embeddings(torch.zeros(2, 4), torch.zeros(3, 4))
    with pytest.raises(InvalidArgumentError):
        CachedInfoNCELoss(lambda f: f, mini_batch_size=0)


@pytest.fixture(scope="module")
def method():
    torch.manual_seed(0)
    return SuffixTuning(SuffixTuningConfig(num_virtual_tokens=4), load_frozen_model(ModelSpec(tiny="llama")))


QUERIES = ["red apple", "blue sky today", "green", "yellow sun shines", "a", "black cat sits on mat", "pink"]
POSITIVES = ["fruit", "weather report", "grass colour", "daylight", "letter", "animal on a rug", "flamingo hue"]
NEGATIVES = ["car", "ocean waves crash", "stone", "", "music"]


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("chunk", [1, 3])
def test_grad_cache_gradients_equal_full_batch_gradients(method, symmetric, chunk):
    features = [method.tokenize(QUERIES), method.tokenize(POSITIVES), method.tokenize(NEGATIVES)]

    method.zero_grad()
    plain = InfoNCELoss(method.embed, symmetric=symmetric)(features)
    (plain * 0.5).backward()  # a scaled backward (gradient accumulation) must scale both the same way
    expected = method.suffix.grad.clone()

    method.zero_grad()
    cached = CachedInfoNCELoss(method.embed, symmetric=symmetric, mini_batch_size=chunk)(features)
    assert method.suffix.grad is None  # nothing is backpropagated before the caller asks
    (cached * 0.5).backward()
    torch.testing.assert_close(cached.detach(), plain.detach(), atol=1e-5, rtol=1e-5)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(method.suffix.grad, expected, atol=1e-6, rtol=1e-4)


def test_grad_cache_without_grad_and_without_negatives(method):
    features = [method.tokenize(QUERIES), method.tokenize(POSITIVES), method.tokenize([])]
    with torch.no_grad():
        cached = CachedInfoNCELoss(method.embed, mini_batch_size=2)(features)
        plain = InfoNCELoss(method.embed)(features[:2])
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)


def test_grad_cache_replays_under_the_forwards_autocast(method):
    """The replay runs inside ``backward()``, after the caller's autocast block closed; it must recompute
    under the same bf16 autocast as the forward, or its gradients are those of another (f32) function."""
    features = [method.tokenize(QUERIES), method.tokenize(POSITIVES)]
    method.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = InfoNCELoss(method.embed)(features)
    plain.backward()
    expected = method.suffix.grad.clone()
    method.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cached = CachedInfoNCELoss(method.embed, mini_batch_size=7)(features)  # one chunk: the same pass
    cached.backward()
    assert expected.abs().sum() > 0
    torch.testing.assert_close(method.suffix.grad, expected, atol=1e-6, rtol=1e-5)


def test_grad_cache_adds_a_micro_batch_gradient_to_dot_grad_in_one_sum(method):
    """With several chunks, ``.grad`` grows by the micro-batch's whole gradient (chunks summed apart), as
    after a plain backward: what data-parallel ranks average is then what one process accumulates."""
    features = [method.tokenize(QUERIES), method.tokenize(POSITIVES)]
    method.zero_grad()
    CachedInfoNCELoss(method.embed, mini_batch_size=2)(features).backward()
    alone = method.suffix.grad.clone()
    earlier = torch.randn_like(alone)
    method.suffix.grad = earlier.clone()
    CachedInfoNCELoss(method.embed, mini_batch_size=2)(features).backward()
    assert torch.equal(method.suffix.grad, earlier + alone)
