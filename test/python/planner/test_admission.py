"""Admission of a training job beside running ones on CUDA (planner/admission.py), the device faked: a job
needs its planned peak less the shared model weights (when loaded) and the CUDA reserve; it waits when that
exceeds the free memory."""

from __future__ import annotations

import torch

from softprompt_worker.planner import admission
from softprompt_worker.planner.plan import plan_job
from softprompt_worker.serving.handlers import WorkerState

GIB = 1 << 30
JOB = {"model": {"tiny": "llama", "device": "cuda"}, "method": "prompt_tuning", "task": "generation",
       "method_config": {"num_virtual_tokens": 8}, "training": {"batch_size": 8, "max_length": 256}}


def fake_cuda(monkeypatch, loaded: bool) -> WorkerState:
    monkeypatch.setattr(admission, "resolve_device", lambda _spec: torch.device("cuda", 0))
    monkeypatch.setattr(admission, "model_key", lambda _spec: "the-model")
    state = WorkerState()
    if loaded:
        state.get_or_create((admission.MODEL_CACHE, "the-model"), lambda: object())
    return state


def test_a_job_waits_when_its_need_beyond_the_shared_model_exceeds_the_free_memory(monkeypatch):
    plan = plan_job(JOB, device="cuda", budget_bytes=None)
    parts = plan["breakdown"]
    own = plan["peak_bytes"] - parts["weights"] - parts["cuda_reserve"]  # what it adds beside a loaded model
    state = fake_cuda(monkeypatch, loaded=True)
    assert admission.need_bytes([JOB], state) == (torch.device("cuda", 0), own)
    assert admission.wait_reason([JOB], state, free=lambda _d: own) is None
    reason = admission.wait_reason([JOB], state, free=lambda _d: own - 1)
    assert reason is not None and reason.startswith("needs about") and "free on cuda:0" in reason
    # not loaded yet: the weights count once, however many jobs share them (train_many)
    fresh = fake_cuda(monkeypatch, loaded=False)
    assert admission.need_bytes([JOB, JOB], fresh)[1] == 2 * own + parts["weights"]


def test_no_estimate_never_holds_a_job_back(monkeypatch):
    state = WorkerState()
    assert admission.wait_reason([JOB | {"model": {"tiny": "llama", "device": "cpu"}}], state, free=lambda _d: 0) is None
    state = fake_cuda(monkeypatch, loaded=True)
    unplannable = JOB | {"training": {"memory_check": False}}
    assert admission.wait_reason([unplannable], state, free=lambda _d: 0) is None
    assert admission.wait_reason([JOB | {"method": "nope"}], state, free=lambda _d: 0) is None  # its own check says why
