"""Checkpoints: round trip, hash verification, fingerprint check, atomic writes, path escapes, resume."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from softprompt_worker.training import checkpoints
from softprompt_worker.training.checkpoints import (build_method_from_checkpoint, load_checkpoint, resolve_under,
                                           save_checkpoint)
from softprompt_worker.errors import CheckpointInvalidError, InvalidArgumentError, NotFoundError, StorageError
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.training.loop import TrainingConfig, train

from fixtures.stub import StubConfig, StubMethod, stub_setup

torch.set_num_threads(1)


@pytest.fixture()
def stub_registered(monkeypatch):
    from softprompt_worker.methods import registry

    monkeypatch.setitem(registry._MODULES, "stub", "fixtures.stub")


def test_round_trip_is_bit_exact_and_describes_itself(tmp_path, stub_registered):
    frozen, method, _ = stub_setup()
    with torch.no_grad():
        method.prompt.normal_()
    path = save_checkpoint("checkpoints/step-7.pb", method, step=7, metrics={"loss": 0.5}, root=tmp_path)
    assert path == tmp_path / "checkpoints" / "step-7.pb"
    assert [p.name for p in path.parent.iterdir()] == ["step-7.pb"]  # no temp file left behind
    record = load_checkpoint(path)
    assert record.method == "stub" and record.step == 7 and record.metrics == {"loss": 0.5}
    assert record.training_state is None and record.base_model["fingerprint"] == frozen.fingerprint
    rebuilt = build_method_from_checkpoint(record, frozen)
    assert isinstance(rebuilt, StubMethod)
    for name, value in method.soft_state().items():
        assert torch.equal(rebuilt.soft_state()[name], value), name
    info = record.describe()
    assert info["tensors"]["prompt"] == {"dtype": "float32", "shape": [4, frozen.hidden_size]}
    assert info["resumable"] is False and info["versions"]["torch"] == torch.__version__


def test_a_flipped_byte_is_detected(tmp_path):
    _, method, _ = stub_setup()
    path = save_checkpoint(tmp_path / "c.pb", method, step=1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the tensor payloads
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointInvalidError, match="corrupt|not a softprompt"):
        load_checkpoint(path)


def test_garbage_and_missing_files(tmp_path):
    (tmp_path / "junk.pb").write_bytes(b"\x80\x04\x95 definitely a pickle")
    with pytest.raises(CheckpointInvalidError):
        load_checkpoint(tmp_path / "junk.pb")
    with pytest.raises(NotFoundError):
        load_checkpoint(tmp_path / "missing.pb")


def test_a_checkpoint_refuses_another_base_model(tmp_path, stub_registered):
    _, method, _ = stub_setup()
    path = save_checkpoint(tmp_path / "c.pb", method, step=1)
    other = load_frozen_model(ModelSpec(tiny="gpt2", device="cpu", overrides={"n_layer": 3}))
    with pytest.raises(CheckpointInvalidError, match="fingerprint"):
        build_method_from_checkpoint(load_checkpoint(path), other)


@pytest.mark.parametrize("name", ["../escape.pb", "/tmp/abs.pb", "a/../../b.pb"])
def test_names_escaping_the_directory_are_rejected(tmp_path, name):
    _, method, _ = stub_setup()
    with pytest.raises(InvalidArgumentError, match="escapes"):
        save_checkpoint(name, method, step=0, root=tmp_path / "run")
    assert resolve_under(tmp_path, "x/y.pb") == tmp_path.resolve() / "x" / "y.pb"


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    _, method, _ = stub_setup()
    path = save_checkpoint(tmp_path / "c.pb", method, step=1)
    before = path.read_bytes()

    def boom(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.os, "replace", boom)
    with pytest.raises(StorageError, match=r"checkpoint \(step 2\): cannot write .*c\.pb.*No space left on device \(ENOSPC\)"):
        save_checkpoint(tmp_path / "c.pb", method, step=2)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.pb"]


def test_resume_through_a_file_matches_the_uninterrupted_run(tmp_path, stub_registered):
    config = TrainingConfig(steps=6, batch_size=8, checkpoint_every=3, log_every=3, lr=0.1)
    frozen, method_a, task_a = stub_setup()
    train(method_a, task_a, config,
          save_checkpoint=lambda s, m, st: save_checkpoint(f"step-{s}.pb", method_a, step=s, metrics=m,
                                                           training_state=st, root=tmp_path))
    record = load_checkpoint(tmp_path / "step-3.pb")
    assert record.training_state is not None and record.describe()["resumable"]
    method_b = build_method_from_checkpoint(record, frozen)
    _, _, task_b = stub_setup()
    task_b.method = method_b
    train(method_b, task_b, config, resume=record.training_state)
    assert torch.equal(method_a.prompt, method_b.prompt) and torch.equal(method_a.logit_bias, method_b.logit_bias)


def test_bf16_soft_state_survives_bit_exact(tmp_path):
    frozen, _, _ = stub_setup()
    method = StubMethod(StubConfig(), frozen).to(torch.bfloat16)
    path = save_checkpoint(tmp_path / "c.pb", method, step=0)
    record = load_checkpoint(path)
    assert record.tensors["prompt"].dtype == torch.bfloat16
    assert torch.equal(record.tensors["prompt"], method.prompt.detach())
