"""No host syncs on the training hot path: a CPU probe for what ``torch.cuda.set_sync_debug_mode`` shows on
a GPU.

The frozen model and the soft parameters are moved to the ``meta`` device, where tensors have shapes but
no values, while the host-side tensors a collate builds stay on the CPU. Every operation that would make
the host read the device (``.item()``/``int()``/``bool()``, ``nonzero``, boolean-mask indexing,
``masked_select``, ``unique``, a copy to the CPU, ``.tolist()``) then has no value to return: the probe
records who asked for it and lets the step go on with a stand-in value. A training step (``task.loss`` +
``backward``) of every method must ask for none from softprompt's code. Syncs inside transformers are
counted apart (its mask helpers ask whether a padding mask is all ones); they are not ours to remove.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from softprompt_worker.methods.registry import method_class
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.tasks.registry import task_class

torch.set_num_threads(1)
aten = torch.ops.aten
PACKAGE = str(Path(__import__("softprompt_worker").__file__).parent)
SYNC_OPS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
            aten._unique2.default, aten.unique_dim.default, aten.unique_consecutive.default}


class SyncProbe(TorchDispatchMode):
    """Records ``(op, caller)`` for each op on a meta tensor that would read the device's values."""

    def __init__(self) -> None:
        super().__init__()
        self.ours: list[str] = []
        self.theirs: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        on_meta = any(isinstance(a, torch.Tensor) and a.device.type == "meta" for a in flat)
        to_host = func is aten._to_copy.default and kwargs.get("device") not in (None, torch.device("meta"))
        # A copy from host memory onto the device without non_blocking waits for the device's queue.
        blocking_upload = (func is aten._to_copy.default and kwargs.get("device") == torch.device("meta")
                           and not kwargs.get("non_blocking", False) and isinstance(args[0], torch.Tensor)
                           and args[0].device.type == "cpu")
        bool_index = func is aten.index.Tensor and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in flat[1:])
        if blocking_upload or (on_meta and (func in SYNC_OPS or to_host or bool_index)):
            self._record(str(func))
            if func is aten._local_scalar_dense.default:
                return True if args[0].dtype == torch.bool else 1
        return func(*args, **kwargs)

    def _record(self, op: str) -> None:
        """Attribute ``op`` to the innermost frame in softprompt's package or in transformers."""
        for frame in reversed(traceback.extract_stack()[:-2]):
            if frame.filename.startswith(PACKAGE):
                self.ours.append(f"{op} at {Path(frame.filename).name}:{frame.lineno} ({frame.line})")
                return
            if "/transformers/" in frame.filename:
                self.theirs.append(f"{op} at transformers/{Path(frame.filename).name}:{frame.lineno}")
                return


class UploadProbe(torch.overrides.TorchFunctionMode):
    """``torch.tensor(data, device=meta)`` builds on the device straight from host data (no dispatch to
    see): on CUDA that is a blocking copy from pageable memory, a sync. Recorded like the others."""

    def __init__(self, probe: SyncProbe) -> None:
        super().__init__()
        self.probe = probe

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor) and str(kwargs.get("device", "")) == "meta" and not (
                args and isinstance(args[0], torch.Tensor) and args[0].device.type == "meta"):
            self.probe._record(f"torch.{func.__name__}(host data, device=meta)")
        return func(*args, **kwargs)


_tolist = torch.Tensor.tolist


@pytest.fixture(autouse=True)
def tolist_on_meta_is_a_sync(monkeypatch: pytest.MonkeyPatch):
    """``tolist`` reads memory directly (no dispatch): fail loudly on a meta tensor."""

    def guarded(self, *args, **kwargs):
        if self.device.type == "meta":
            raise AssertionError(f"tolist() of a device tensor {tuple(self.shape)}: a host sync")
        return _tolist(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "tolist", guarded)


GEN_ROWS = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello there", "kite", "a")]
CLS_ROWS = [{"input": t, "label": label} for t, label in (("good day", "yes"), ("bad", "no"), ("fine", "yes"))]
PAIRS = [{"query": q, "positive": p, "negatives": ["unrelated text"]}
         for q, p in (("red", "an apple"), ("sky colour today", "blue"), ("x", "letters"))]
CASES = {
    "prompt_tuning/generation/gpt2": ("prompt_tuning", {"num_virtual_tokens": 3}, "generation", {}, GEN_ROWS, "gpt2"),
    "prompt_tuning/classification/llama": ("prompt_tuning", {"num_virtual_tokens": 3}, "classification",
                                           {"labels": ["yes", "no"]}, CLS_ROWS, "llama"),
    "prefix_tuning/classification-ranking/gpt2": ("prefix_tuning", {"num_virtual_tokens": 3}, "classification",
                                                  {"labels": ["yes", "no"], "loss": "ranking"}, CLS_ROWS, "gpt2"),
    "prompt_tuning/generation/t5": ("prompt_tuning", {"num_virtual_tokens": 3}, "generation", {}, GEN_ROWS, "t5"),
    "prefix_tuning/generation/llama": ("prefix_tuning", {"num_virtual_tokens": 3}, "generation", {}, GEN_ROWS,
                                       "llama"),
    "prefix_tuning/generation/bart": ("prefix_tuning", {"num_virtual_tokens": 3, "prefix_projection": True},
                                      "generation", {}, GEN_ROWS, "bart"),
    "suffix_tuning/embedding/llama": ("suffix_tuning", {"num_virtual_tokens": 2}, "embedding", {}, PAIRS, "llama"),
    "suffix_tuning/embedding+gradcache/gpt2": ("suffix_tuning", {"num_virtual_tokens": 2}, "embedding",
                                               {"grad_cache_mini_batch": 2}, PAIRS, "gpt2"),
    "suffix_tuning/embedding/bert": ("suffix_tuning", {"num_virtual_tokens": 2, "pooling": "mean"}, "embedding", {},
                                     PAIRS, "bert"),
    "passage_tuning/reranking/llama": ("passage_tuning", {"num_virtual_tokens": 4}, "reranking", {}, PAIRS, "llama"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_training_step_reads_nothing_back_from_the_device(case):
    method_name, method_config, task_name, options, rows, family = CASES[case]
    frozen = load_frozen_model(ModelSpec(tiny=family, device="cpu"))
    cls = method_class(method_name)
    method = cls(cls.config_class.from_dict(method_config), frozen)
    task = task_class(task_name)(method, options, rows, [])
    frozen.model.to("meta")
    method.to("meta")
    batch = next(iter(task.batches(len(rows), torch.Generator().manual_seed(0))))  # collate: host work
    probe = SyncProbe()
    with probe, UploadProbe(probe):
        loss, n_tokens = task.loss(batch)
        loss.backward()
    assert isinstance(n_tokens, int) and loss.device.type == "meta"
    assert all(p.grad is not None for p in method.parameters() if p.requires_grad)
    assert probe.ours == [], "\n".join(probe.ours)


def test_the_probe_sees_a_sync_in_our_code():
    """The probe is not blind: ``check_positions`` reads the device when a batch's host bound is over the
    model's limit (on purpose: only then), and the probe attributes that read to injection.py."""
    from softprompt_worker.methods.injection import Packed, check_positions

    index = torch.ones(2, 3, dtype=torch.long, device="meta")  # (B, L)
    mask = positions = torch.ones(2, 4, dtype=torch.long, device="meta")  # (B, total)
    packed = Packed(torch.zeros(2, 4, 8, device="meta"), mask, index, positions, max_offset_plus_virtual=300)
    probe = SyncProbe()
    with probe:
        check_positions(load_frozen_model(ModelSpec(tiny="gpt2")), packed)  # gpt2 tiny: 256 positions
    assert len(probe.ours) == 1 and "injection.py" in probe.ours[0], probe.ours
