"""Prompt cache and the prompt/inference ops: one model serves many prompts, per-row prompts in one
request, errors that name what is wrong, prompt transfer from a checkpoint; prompts of every method in
one cache (embed/rerank by loaded name); checkpoints that name their full model spec."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.training import checkpoints
from softprompt_worker._proto.softprompt.v1 import checkpoint_pb2
from softprompt_worker.training.checkpoints import load_checkpoint, save_checkpoint
from softprompt_worker.errors import CheckpointInvalidError, InvalidArgumentError, NotFoundError
from softprompt_worker.inference.generation import GenerationOptions, generate
from softprompt_worker.methods.prefix_tuning import PrefixTuning, PrefixTuningConfig
from softprompt_worker.methods.passage_tuning import PassageTuning, PassageTuningConfig
from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt_worker.methods.suffix_tuning import SuffixTuning, SuffixTuningConfig
from softprompt_worker.ops import load_op_modules
from softprompt_worker.serving.handlers import OpContext, Request, WorkerState, get_op
from softprompt_worker.inference.prompts import (CHECKPOINT_PROMPTS, MAX_CHECKPOINT_PROMPTS, prompt_cache,
                                                 resolve_prompt, spec_for_checkpoint)
from softprompt_worker.models import ModelSpec
from softprompt_worker.models.cache import get_frozen_model

torch.set_num_threads(1)
assert not load_op_modules([f"softprompt_worker.ops.{m}" for m in
                            ("inference", "prompts", "embedding", "rerank", "train", "checkpoints")])
MODEL = {"tiny": "gpt2"}


def call(state, name, body, events=None):
    ctx = OpContext(1, name, state, lambda rid, op, b, t: events.append(b) if events is not None else None)
    return get_op(name).handler(Request(1, name, body), ctx).body


def embed(state, body) -> tuple[dict, torch.Tensor]:
    reply = get_op("embed").handler(Request(1, "embed", body), OpContext(1, "embed", state, lambda *_: None))
    return reply.body, reply.tensors["embeddings"]


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


# -- one cache for every method: embed and rerank take loaded names ------------------------------------

@pytest.fixture()
def every_method(world, tmp_path):
    """``world`` plus saved suffix- and passage-tuning prompts, all four loaded by name."""
    state, frozen, methods, paths = world
    sx = SuffixTuning(SuffixTuningConfig(num_virtual_tokens=3, init="random"), frozen)
    pa = PassageTuning(PassageTuningConfig(num_passage_vectors=2, bottleneck_dim=8), frozen)
    paths = {**paths, "sx": str(save_checkpoint(tmp_path / "sx.pb", sx, step=2)),
             "pa": str(save_checkpoint(tmp_path / "pa.pb", pa, step=4))}
    for name, path in paths.items():
        info = call(state, "prompt_load", {"name": name, "path": path})  # every method, model from the checkpoint
        assert info["name"] == name and info["model"] == "tiny:gpt2"
    assert [p["method"] for p in call(state, "prompt_list", {})["prompts"]] == [
        "passage_tuning", "prompt_tuning", "prefix_tuning", "suffix_tuning"]  # pa, pt, px, sx
    return state, frozen, paths


def test_embed_and_rerank_take_a_loaded_name_like_a_path(every_method):
    state, frozen, paths = every_method
    texts = ["alpha", "a longer text", "b"]
    by_name, vectors = embed(state, {"prompt": "sx", "texts": texts})
    by_path, same_vectors = embed(state, {"prompt": paths["sx"], "texts": texts})
    assert by_name["source"] == "suffix_tuning" and by_name == by_path and torch.equal(vectors, same_vectors)
    method = prompt_cache(state).get("sx").method
    assert method.frozen is frozen
    torch.testing.assert_close(vectors, method.encode(texts))
    queries = [{"query": "who wrote it?", "passages": ["Ann wrote it.", "Rain today.", "Bob read it."]}]
    ranked = call(state, "rerank", {"prompt": "pa", "queries": queries})
    assert ranked["reranker"] == "passage_tuning"
    assert ranked == call(state, "rerank", {"model": MODEL, "prompt": paths["pa"], "queries": queries})
    assert ranked != call(state, "rerank", {"model": MODEL, "queries": queries})  # UPR scores differently
    rows = [{"query": "q cats", "positive": "doc about cats", "negatives": ["doc about rain"]}]
    assert call(state, "evaluate_reranking", {"prompt": "pa", "rows": rows})["reranker"] == "passage_tuning"
    sts = {"pairs": [["cats", "cats!"], ["rain", "tea"]], "scores": [5, 0]}
    assert call(state, "evaluate_retrieval", {"prompt": "sx", "sts": sts})["source"] == "suffix_tuning"


def test_prompts_used_by_checkpoint_path_are_kept_for_the_most_recent_paths_only(world, tmp_path):
    state, frozen, _, _ = world
    sx = SuffixTuning(SuffixTuningConfig(num_virtual_tokens=2, init="random"), frozen)
    paths = [str(save_checkpoint(tmp_path / f"sx{i}.pb", sx, step=i)) for i in range(MAX_CHECKPOINT_PROMPTS + 2)]
    built = {p: resolve_prompt(state, None, p, use="embed", needs=("suffix_tuning",))[1] for p in paths}
    cached = lambda: [k[2] for k in state.cache if isinstance(k, tuple) and k[0] == CHECKPOINT_PROMPTS]  # noqa: E731
    assert cached() == paths[2:]  # bounded: the two least recently used are gone
    assert resolve_prompt(state, None, paths[2], use="embed", needs=("suffix_tuning",))[1] is built[paths[2]]  # a hit
    assert cached()[-1] == paths[2]  # ... that is now the most recent
    rebuilt = resolve_prompt(state, None, paths[0], use="embed", needs=("suffix_tuning",))[1]
    assert rebuilt is not built[paths[0]] and torch.equal(rebuilt.suffix, built[paths[0]].suffix)
    assert len(cached()) == MAX_CHECKPOINT_PROMPTS and paths[3] not in cached()


def test_a_prompt_of_the_wrong_method_is_refused_by_name(every_method):
    state, frozen, paths = every_method
    queries = [{"query": "q", "passages": ["a"]}]
    with pytest.raises(InvalidArgumentError, match="^prompt 'px' is a prefix_tuning prompt; rerank needs passage_tuning$"):
        call(state, "rerank", {"prompt": "px", "queries": queries})
    with pytest.raises(InvalidArgumentError, match="'pa' is a passage_tuning prompt; embed needs suffix_tuning"):
        embed(state, {"prompt": "pa", "texts": ["a"]})
    with pytest.raises(InvalidArgumentError, match="is a passage_tuning prompt; embed needs suffix_tuning"):
        embed(state, {"prompt": paths["pa"], "texts": ["a"]})  # by path, refused before any model loads
    with pytest.raises(InvalidArgumentError, match="'sx' is a suffix_tuning prompt; .* needs prompt_tuning or prefix_tuning"):
        call(state, "generate", {"prompts": ["pt", "sx"], "inputs": ["a", "b"]})
    with pytest.raises(InvalidArgumentError, match="evaluate_reranking needs passage_tuning"):
        call(state, "evaluate_reranking", {"prompt": "sx", "rows": [{"query": "q", "positive": "p"}]})
    with pytest.raises(InvalidArgumentError, match="not on the requested model"):
        embed(state, {"model": {"tiny": "gpt2", "seed": 1}, "prompt": "sx", "texts": ["a"]})
    with pytest.raises(NotFoundError, match="neither a loaded prompt .* nor a checkpoint file"):
        call(state, "rerank", {"prompt": "nope", "queries": queries})


# -- checkpoints record the full model spec ----------------------------------------------------------

SEEDED = {"tiny": "gpt2", "seed": 5, "overrides": {"initializer_range": 0.2, "n_layer": 1}}
EMBEDDING_ROWS = [{"query": f"q {w}", "positive": f"doc about {w}"} for w in ("cats", "dogs", "rain", "snow")]


def test_a_tiny_model_with_seed_and_overrides_needs_no_model_again(tmp_path):
    state = WorkerState()
    trained = call(state, "train", {"model": SEEDED, "method": "suffix_tuning", "task": "embedding",
                                    "method_config": {"num_virtual_tokens": 2}, "data": {"train": {"rows": EMBEDDING_ROWS}},
                                    "training": {"steps": 1, "batch_size": 2}, "run_dir": str(tmp_path / "run")})
    path = trained["checkpoint"]
    info = call(WorkerState(), "checkpoint_inspect", {"path": path})
    assert info["base_model"]["model_spec"] == {"tiny": "gpt2", "seed": 5, "name_or_path": None, "embedded": None, "revision": None,
                                                "trust_remote_code": False, "quantization": None,
                                                "overrides": {"initializer_range": 0.2, "n_layer": 1}}
    texts = ["alpha", "beta"]
    _, expected = embed(state, {"model": SEEDED, "prompt": path, "texts": texts})
    fresh = WorkerState()  # a new worker: nothing cached, only the checkpoint file names the model
    assert torch.equal(embed(fresh, {"prompt": path, "texts": texts})[1], expected)
    assert call(fresh, "prompt_load", {"name": "s", "path": path})["method"] == "suffix_tuning"
    assert torch.equal(embed(fresh, {"prompt": "s", "texts": texts})[1], expected)
    # the same weights: tiny models with one seed and overrides are bit-identical across loads
    ours = prompt_cache(fresh).get("s").method.frozen.model.state_dict()
    theirs = get_frozen_model(state, ModelSpec.from_dict(SEEDED)).model.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_a_checkpoint_without_the_recorded_spec_falls_back_to_the_name(tmp_path):
    state = WorkerState()
    frozen = get_frozen_model(state, ModelSpec.from_dict(SEEDED))
    path = save_checkpoint(tmp_path / "old.pb", SuffixTuning(SuffixTuningConfig(num_virtual_tokens=2), frozen), step=1)
    msg = checkpoint_pb2.Checkpoint.FromString(path.read_bytes())
    msg.base_model.model_spec_json = ""  # as written before the field existed
    msg.content_sha256 = checkpoints._content_hash(msg)
    path.write_bytes(msg.SerializeToString(deterministic=True))
    assert load_checkpoint(path).base_model["model_spec"] is None
    assert spec_for_checkpoint(load_checkpoint(path).base_model) == ModelSpec(tiny="gpt2")
    with pytest.raises(CheckpointInvalidError, match="fingerprint"):  # tiny:gpt2 at its defaults has 2 layers
        call(state, "prompt_load", {"name": "old", "path": str(path)})
    assert call(state, "prompt_load", {"name": "old", "path": str(path), "model": SEEDED})["step"] == 1


def test_the_recorded_spec_never_enables_remote_code():
    recorded = {"name_or_path": "org/custom", "tiny": None, "seed": 0, "revision": "abc", "overrides": {},
                "trust_remote_code": False}
    assert spec_for_checkpoint({"model_spec": recorded}) == ModelSpec(name_or_path="org/custom", revision="abc")
    with pytest.raises(InvalidArgumentError, match="trust_remote_code"):
        spec_for_checkpoint({"name_or_path": "org/custom", "model_spec": {**recorded, "trust_remote_code": True}})
    with pytest.raises(InvalidArgumentError, match="cannot read the checkpoint's recorded model spec"):
        spec_for_checkpoint({"model_spec": {**recorded, "from_the_future": 1}})


@pytest.mark.skipif(torch.cuda.is_available(), reason="'auto' resolves to the CPU only on a CPU-only machine")
def test_specs_that_load_the_same_model_share_one_cache_entry():
    state = WorkerState()
    a = get_frozen_model(state, ModelSpec.from_dict({"tiny": "gpt2"}))
    assert get_frozen_model(state, ModelSpec.from_dict({"tiny": "gpt2", "device": "cpu", "dtype": "f32"})) is a
    assert get_frozen_model(state, ModelSpec.from_dict({"tiny": "gpt2", "seed": 1})) is not a
