"""Several clients on one worker: the client directory (hello's client_id by connection) and prompts that
are per client unless loaded with shared=True, through the real ops on a tiny model."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.training.checkpoints import save_checkpoint
from softprompt_worker.serving.clients import ClientDirectory, client_directory
from softprompt_worker.errors import InvalidArgumentError, NotFoundError
from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt_worker.models import ModelSpec
from softprompt_worker.ops import load_op_modules
from softprompt_worker.serving.handlers import OpContext, Request, WorkerState, get_op
from softprompt_worker.models.cache import get_frozen_model

torch.set_num_threads(1)
assert not load_op_modules([f"softprompt_worker.ops.{m}" for m in ("control", "prompts", "inference")])
MODEL = {"tiny": "gpt2"}


def call(state: WorkerState, op: str, body: dict, peer: bytes = b"peer") -> dict:
    ctx = OpContext(1, op, state, lambda *_: None, peer=peer)
    return get_op(op).handler(Request(1, op, body), ctx).body


def names(state: WorkerState) -> list[tuple[str, bool]]:
    return [(p["name"], p["shared"]) for p in call(state, "prompt_list", {})["prompts"]]


def test_directory_maps_connections_to_clients_and_stays_bounded() -> None:
    d = ClientDirectory(limit=3)
    assert d.client_of(b"a") is None
    d.register(b"a", "alice")
    d.register(b"b", "bob")
    d.register(b"a2", "alice")  # alice reconnected: a new routing id, the same client
    assert (d.client_of(b"a"), d.client_of(b"a2"), d.client_of(b"b")) == ("alice", "alice", "bob")
    d.register(b"c", "carol")
    assert d.client_of(b"a") is None and len(d) == 3  # the oldest connection is forgotten first


def test_hello_registers_the_client_id() -> None:
    state = WorkerState()
    call(state, "hello", {"protocol": 1, "client": "pytest", "client_id": "alice"}, peer=b"p1")
    call(state, "hello", {"protocol": 1, "client": "pytest"}, peer=b"p2")
    assert client_directory(state).client_of(b"p1") == "alice"
    assert client_directory(state).client_of(b"p2") == ""  # no id: the anonymous client
    for bad in (7, "x" * 129):
        with pytest.raises(InvalidArgumentError, match="client_id"):
            call(state, "hello", {"protocol": 1, "client": "pytest", "client_id": bad})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    frozen = get_frozen_model(WorkerState(), ModelSpec.from_dict(MODEL))
    method = PromptTuning(PromptTuningConfig(num_virtual_tokens=2, init="random", seed=1), frozen)
    return str(save_checkpoint(tmp_path_factory.mktemp("clients") / "pt.pb", method, step=1))


def test_prompts_are_per_client_unless_shared(checkpoint: str) -> None:
    state = WorkerState()
    alice, bob, anonymous = state.for_client("alice"), state.for_client("bob"), state
    assert alice.cache is state.cache and alice.requests is state.requests  # one worker, one cache

    assert names(bob) == [] and not [k for k in state.cache if k[:2] == ("prompts", "client")]  # lookups add nothing
    call(alice, "prompt_load", {"name": "mine", "path": checkpoint, "model": MODEL})
    assert names(alice) == [("mine", False)] and names(bob) == [] and names(anonymous) == []
    with pytest.raises(NotFoundError, match="'mine' is not loaded"):
        call(bob, "generate", {"prompt": "mine", "inputs": ["x"], "max_new_tokens": 1})
    assert call(bob, "prompt_unload", {"name": "mine"}) == {"unloaded": False}  # bob cannot drop alice's

    call(alice, "prompt_load", {"name": "common", "path": checkpoint, "model": MODEL, "shared": True})
    assert names(bob) == [("common", True)]
    assert call(bob, "generate", {"prompt": "common", "inputs": ["x"], "max_new_tokens": 1})["outputs"]

    # bob's own prompt of the same name comes first, for bob only; unloading it uncovers the shared one
    call(bob, "prompt_load", {"name": "common", "path": checkpoint, "model": MODEL})
    assert names(bob) == [("common", False)] and names(alice) == [("common", True), ("mine", False)]
    assert call(bob, "prompt_unload", {"name": "common"}) == {"unloaded": True}
    assert names(bob) == [("common", True)]

    # loading a shared prompt replaces the loader's own of that name, which would hide it
    call(alice, "prompt_load", {"name": "mine", "path": checkpoint, "model": MODEL, "shared": True})
    assert names(alice) == [("common", True), ("mine", True)] == names(bob)
    with pytest.raises(InvalidArgumentError, match="shared"):
        call(alice, "prompt_load", {"name": "x", "path": checkpoint, "model": MODEL, "shared": "yes"})
