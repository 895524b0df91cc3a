"""The planner's verdicts, suggestions and longest sequence; the ``plan`` op; the ``train`` op's refusal
before loading on CUDA (the device's memory faked), and ``training.memory_check``."""

from __future__ import annotations

import types

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError, OutOfMemoryError
from softprompt_worker.ops import train as _train_op  # noqa: F401  (registers "train")
from softprompt_worker.ops.plan import plan_op
from softprompt_worker.serving.handlers import OpContext, Request, WorkerState
from softprompt_worker.planner.check import refuse_if_too_large
from softprompt_worker.planner.plan import plan_job
from softprompt_worker.training.loop import TrainingConfig

GIB = 1 << 30
JOB = {"model": {"tiny": "llama"}, "method": "prompt_tuning", "task": "generation",
       "method_config": {"num_virtual_tokens": 8}, "training": {"batch_size": 8, "max_length": 256}}


def call(body: dict):
    ctx = OpContext(1, "plan", WorkerState(), lambda *a: None)
    return plan_op(Request(id=1, op="plan", body=body), ctx).body


def test_a_budget_gives_a_verdict_and_the_longest_sequence_that_fits():
    roomy = plan_job(JOB, device="cpu", budget_bytes=10 * GIB)
    assert roomy["fits"] is True and roomy["suggestions"] == []
    assert roomy["peak_bytes"] == sum(roomy["breakdown"].values())
    assert roomy["longest_seq"] == 256 - 8  # the tiny model's 256 positions, minus the prompt
    tight = plan_job(JOB, device="cpu", budget_bytes=roomy["peak_bytes"] - 1)
    assert tight["fits"] is False and 0 < tight["longest_seq"] < 256
    assert plan_job(JOB, device="cpu", budget_bytes=None)["fits"] is None


def test_suggestions_each_fit_when_they_say_so():
    full = plan_job({**JOB, "training": {"batch_size": 8, "max_length": 240}}, device="cuda", budget_bytes=None)
    budget = full["peak_bytes"] - full["breakdown"]["activations"] // 2
    result = plan_job({**JOB, "training": {"batch_size": 8, "max_length": 240}}, device="cuda", budget_bytes=budget)
    assert result["fits"] is False
    changes = {tuple(sorted(s["change"])) for s in result["suggestions"]}
    assert ("training.gradient_checkpointing",) in changes and ("model.quantization",) in changes
    assert ("training.batch_size", "training.grad_accumulation") in changes and ("training.max_length",) in changes
    assert result["suggestions"][0]["fits"]  # fitting ones first
    for s in result["suggestions"]:
        assert s["fits"] == (s["peak_bytes"] <= budget) and s["text"]
    batch = next(s for s in result["suggestions"] if "training.batch_size" in s["change"])["change"]
    assert batch["training.batch_size"] * batch["training.grad_accumulation"] == 8  # the same effective batch


def test_gradient_checkpointing_and_nf4_lower_the_estimate_and_cuda_computes_in_bf16():
    base = plan_job(JOB, device="cuda", budget_bytes=None)
    ckpt = plan_job({**JOB, "training": {**JOB["training"], "gradient_checkpointing": True}}, device="cuda",
                    budget_bytes=None)
    nf4 = plan_job({**JOB, "model": {"tiny": "llama", "quantization": "nf4"}}, device="cuda", budget_bytes=None)
    assert ckpt["breakdown"]["activations"] < base["breakdown"]["activations"]
    assert nf4["breakdown"]["weights"] < 0.6 * base["breakdown"]["weights"]  # the tiny model is mostly embeddings
    assert base["settings"]["compute_dtype"] == "bf16" and base["breakdown"]["cuda_reserve"] == GIB
    cpu = plan_job(JOB, device="cpu", budget_bytes=None)
    assert cpu["settings"]["compute_dtype"] == "f32" and "cuda_reserve" not in cpu["breakdown"]


def test_every_method_plans_and_encoder_decoders_are_refused_with_a_reason():
    for method, task in (("prefix_tuning", "generation"), ("suffix_tuning", "embedding"),
                         ("passage_tuning", "reranking")):
        result = plan_job({**JOB, "method": method, "task": task}, device="cpu", budget_bytes=GIB)
        assert result["fits"] and result["settings"]["trainable_params"] > 0
    with pytest.raises(InvalidArgumentError, match="encoder-decoder"):
        plan_job({**JOB, "model": {"tiny": "t5"}}, device="cpu", budget_bytes=None)


def test_the_planner_reads_a_train_body_no_op_has_checked():
    """The scheduler asks the planner before the op checks the body: the op's own training fields change no
    estimate, and a bad shape is an InvalidArgumentError naming the field (training/job.JobRequest)."""
    extras = {**JOB["training"], "keep_last": 2, "report_to": ["tensorboard"]}
    assert plan_job({**JOB, "training": extras}, device="cpu", budget_bytes=None) == plan_job(JOB, device="cpu",
                                                                                             budget_bytes=None)
    with pytest.raises(InvalidArgumentError, match="method: required"):
        plan_job({k: v for k, v in JOB.items() if k != "method"}, device="cpu", budget_bytes=None)
    with pytest.raises(InvalidArgumentError, match="training: expected a map"):
        plan_job({**JOB, "training": [1]}, device="cpu", budget_bytes=None)


def test_plan_op_validates_its_fields_and_reports_the_budget_source():
    reply = call({**JOB, "gpu_bytes": 24 * GIB, "data": {"train": {"rows": []}}, "run_dir": "/tmp/x"})
    assert reply["fits"] is True and reply["budget_source"] == "given" and reply["device"] == "cuda"
    assert call({**JOB, "device": "cpu"})["budget_source"] is None or torch.cuda.is_available()
    for bad, match in (({"gpu_bytes": 0}, "gpu_bytes"), ({"gpu_bytes": "24GiB"}, "gpu_bytes"),
                       ({"negatives": -1}, "negatives"), ({"device": "tpu"}, "device"), ({"colour": 1}, "unknown")):
        with pytest.raises(InvalidArgumentError, match=match):
            call({**JOB, **bad})


def fake_cuda(monkeypatch, total: int):
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: types.SimpleNamespace(total_memory=total))


def test_train_refuses_on_cuda_with_the_numbers_and_what_to_change(monkeypatch):
    fake_cuda(monkeypatch, 2 * GIB)
    body = {**JOB, "training": {"batch_size": 1024, "max_length": 240}}
    with pytest.raises(OutOfMemoryError) as info:
        refuse_if_too_large(body, torch.device("cuda"), memory_check=True, shard_model=False)
    message, details = info.value.message, info.value.details
    assert "GiB" in message and "but cuda has 2.0 GiB" in message and "memory_check false" in message
    assert details["available_bytes"] == 2 * GIB and details["estimated_bytes"] > 2 * GIB
    assert "fits with:" in message and details["suggestions"]
    # Off by the option, on the CPU, and for sharded models: no refusal.
    refuse_if_too_large(body, torch.device("cuda"), memory_check=False, shard_model=False)
    refuse_if_too_large(body, torch.device("cpu"), memory_check=True, shard_model=False)
    refuse_if_too_large(body, torch.device("cuda"), memory_check=True, shard_model=True)


def test_memory_check_is_a_training_option():
    assert TrainingConfig.from_dict({}).memory_check is True
    assert TrainingConfig.from_dict({"memory_check": False}).memory_check is False
    with pytest.raises(InvalidArgumentError, match="memory_check"):
        TrainingConfig.from_dict({"memory_check": "no"})


def test_the_train_op_refuses_before_loading_anything(monkeypatch, tmp_path):
    import softprompt_worker.ops.train as train_module
    from softprompt_worker.serving.handlers import get_op

    fake_cuda(monkeypatch, 2 * GIB)
    monkeypatch.setattr(train_module, "resolve_device", lambda name: torch.device("cuda"))
    loaded = []
    monkeypatch.setattr(train_module, "get_frozen_model", lambda *a: loaded.append(a))
    body = {**JOB, "training": {"batch_size": 1024, "max_length": 240}, "data": {"train": {"rows": []}},
            "run_dir": str(tmp_path / "run")}
    ctx = OpContext(1, "train", WorkerState(), lambda *a: None)
    with pytest.raises(OutOfMemoryError, match="but cuda has 2.0 GiB"):
        get_op("train").handler(Request(id=1, op="train", body=body), ctx)
    assert loaded == [] and not (tmp_path / "run").exists()
    body["training"] = {**body["training"], "memory_check": False}
    with pytest.raises(Exception) as info:  # past the check: on to loading (refused here by the stub)
        get_op("train").handler(Request(id=1, op="train", body=body), ctx)
    assert not isinstance(info.value, OutOfMemoryError) and len(loaded) == 1
