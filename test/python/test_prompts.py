"""Prompt cache and the prompt/inference ops: one model serves many prompts, per-row prompts in one
request, errors that name what is wrong, prompt transfer from a checkpoint."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.checkpoints import save_checkpoint
from softprompt_worker.errors import CheckpointInvalidError, InvalidArgumentError, NotFoundError
from softprompt_worker.inference import GenerationOptions, generate
from softprompt_worker.methods.prefix_tuning import PrefixTuning, PrefixTuningConfig
from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt_worker.ops import inference as inference_ops  # noqa: F401 - registers the ops
from softprompt_worker.ops import prompts as prompt_ops  # noqa: F401
from softprompt_worker.ops.registry import OpContext, Request, WorkerState, get_op
from softprompt_worker.prompts import get_frozen_model, prompt_cache
from softprompt_worker.models import ModelSpec

torch.set_num_threads(1)
MODEL = {"tiny": "gpt2"}


def call(state, name, body, events=None):
    ctx = OpContext(1, name, state, lambda rid, op, b, t: events.append(b) if events is not None else None)
    return get_op(name).handler(Request(1, name, body), ctx).body


@pytest.fixture()
def world(tmp_path):
    """A worker state with the model cached and two saved prompts (prompt tuning, prefix tuning)."""
    state = WorkerState()
    frozen = get_frozen_model(state, ModelSpec.from_dict(MODEL))
    pt = PromptTuning(PromptTuningConfig(num_virtual_tokens=4, init="random", seed=3), frozen)
    px = PrefixTuning(PrefixTuningConfig(num_virtual_tokens=6, prefix_projection=True), frozen)
    paths = {"pt": save_checkpoint(tmp_path / "pt.pb", pt, step=3, metrics={"loss": 1.5}),
             "px": save_checkpoint(tmp_path / "px.pb", px, step=5)}
    return state, frozen, {"pt": pt, "px": px}, {k: str(v) for k, v in paths.items()}


def test_load_list_unload(world):
    state, frozen, methods, paths = world
    info = call(state, "prompt_load", {"name": "a", "path": paths["pt"], "model": MODEL})
    assert info["method"] == "prompt_tuning" and info["step"] == 3 and info["metrics"] == {"loss": 1.5}
    assert info["method_config"]["num_virtual_tokens"] == 4
    call(state, "prompt_load", {"name": "b", "path": paths["px"], "model": MODEL})
    assert [p["name"] for p in call(state, "prompt_list", {})["prompts"]] == ["a", "b"]
    # both prompts share the one cached model: no reload
    assert prompt_cache(state).get("a").method.frozen is frozen is prompt_cache(state).get("b").method.frozen
    assert call(state, "prompt_unload", {"name": "a"}) == {"unloaded": True}
    assert call(state, "prompt_unload", {"name": "a"}) == {"unloaded": False}
    assert [p["name"] for p in call(state, "prompt_list", {})["prompts"]] == ["b"]


def test_loaded_prompt_reproduces_the_trained_method(world):
    state, frozen, methods, paths = world
    call(state, "prompt_load", {"name": "pt", "path": paths["pt"], "model": MODEL})
    call(state, "prompt_load", {"name": "px", "path": paths["px"], "model": MODEL})
    inputs = ["hello", "abc", "zz"]
    out = call(state, "generate", {"prompts": ["pt", "px", None], "inputs": inputs, "max_new_tokens": 6})
    with torch.no_grad():
        rows = [methods["pt"].injection(), methods["px"].injection(), None]
    assert out["outputs"] == generate(frozen, rows, inputs, GenerationOptions(max_new_tokens=6))


def test_generate_streams_rows_and_batches(world):
    state, frozen, methods, paths = world
    call(state, "prompt_load", {"name": "pt", "path": paths["pt"]})  # model taken from the checkpoint
    events: list[dict] = []
    body = {"prompt": "pt", "model": MODEL, "inputs": ["a", "bb", "ccc"], "max_new_tokens": 5, "batch_size": 2}
    out = call(state, "generate", body, events)["outputs"]
    for row in range(3):
        assert "".join(e["text"] for e in events if e["row"] == row) == out[row]
    assert {e["row"] for e in events} == {0, 1, 2} and all(isinstance(e["token_ids"], list) for e in events)


def test_classify_op(world):
    state, frozen, methods, paths = world
    call(state, "prompt_load", {"name": "px", "path": paths["px"], "model": MODEL})
    out = call(state, "classify", {"prompts": ["px", None], "inputs": ["good", "bad"], "labels": ["yes", "no"]})
    assert len(out["scores"]) == 2 and all(len(s) == 2 for s in out["scores"])
    for pred, scores in zip(out["predictions"], out["scores"]):
        assert pred == ["yes", "no"][max(range(2), key=scores.__getitem__)]


def test_errors_name_the_problem(world, tmp_path):
    state, frozen, methods, paths = world
    with pytest.raises(NotFoundError, match="not loaded"):
        call(state, "generate", {"prompt": "nope", "inputs": ["a"]})
    with pytest.raises(NotFoundError):
        call(state, "prompt_load", {"name": "x", "path": str(tmp_path / "missing.pb"), "model": MODEL})
    with pytest.raises(CheckpointInvalidError, match="fingerprint"):
        call(state, "prompt_load", {"name": "x", "path": paths["pt"], "model": {"tiny": "llama"}})
    call(state, "prompt_load", {"name": "pt", "path": paths["pt"], "model": MODEL})
    with pytest.raises(InvalidArgumentError, match="not on the requested model"):
        call(state, "generate", {"prompt": "pt", "model": {"tiny": "gpt2", "seed": 1}, "inputs": ["a"]})
    with pytest.raises(InvalidArgumentError, match="prompts"):
        call(state, "generate", {"prompts": ["pt"], "inputs": ["a", "b"]})
    with pytest.raises(InvalidArgumentError, match="labels"):
        call(state, "classify", {"prompt": "pt", "inputs": ["a"], "labels": ["only"]})


def test_prompt_transfer_from_checkpoint(world):
    state, frozen, methods, paths = world
    source = methods["pt"].embedding.detach()  # (4, H)
    target = PromptTuning(PromptTuningConfig(num_virtual_tokens=6, init="checkpoint",
                                             init_checkpoint=paths["pt"]), frozen)
    assert torch.equal(target.soft_state()["embedding"], torch.cat([source, source[:2]]))  # repeated, cut to 6
    # a checkpoint of the transferred prompt loads without touching the source again
    restored = PromptTuning(target.config, frozen)
    restored.load_soft_state(target.soft_state())
    assert torch.equal(restored.injection().embeds, target.injection().embeds)
