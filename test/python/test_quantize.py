"""A quantized frozen base (quantize.py): NF4 and int8 through bitsandbytes' CPU backend here (CUDA in
bench/gpu). The base stays frozen and close to its full-precision self, prompts still learn on it, the
checkpoint records the choice, and a prompt trained on a quantized base loads on the full-precision one."""

from __future__ import annotations

import builtins
from types import SimpleNamespace

import pytest
import torch

from softprompt_worker.training.checkpoints import load_checkpoint, save_checkpoint
from softprompt_worker.errors import DependencyMissingError, InvalidArgumentError
from softprompt_worker.methods.registry import method_class
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.inference.prompts import spec_for_checkpoint
from softprompt_worker.tasks.generation import GenerationTask
from softprompt_worker.training.loop import TrainingConfig, train

pytest.importorskip("bitsandbytes")
torch.set_num_threads(1)
OVERRIDES = {"initializer_range": 0.1}
ROWS = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello", "kite", "moon")]


def _model(quantization):
    return load_frozen_model(ModelSpec(tiny="llama", overrides=OVERRIDES, quantization=quantization))


@pytest.mark.parametrize(("kind", "tolerance"), [("int8", 0.05), ("nf4", 0.4)])
def test_a_quantized_base_stays_close_frozen_and_trainable(kind, tolerance, tmp_path):
    full, quantized = _model(None), _model(kind)
    assert quantized.fingerprint == full.fingerprint  # storage is not identity: same model, same prompts
    assert quantized.dtype == torch.float32  # computes in the model's dtype
    ids = torch.tensor([[5, 40, 41, 42, 43, 44]])
    with torch.no_grad():
        reference = full.model(input_ids=ids).logits
        gap = (quantized.model(input_ids=ids).logits - reference).norm() / reference.norm()
    # Quantized (not a copy), and close: relative error of the logits measured 0.022 (int8) and 0.24 (nf4) on
    # this random 64-wide model, whose blocks of Gaussian weights are NF4's worst case; real models do better.
    assert 0 < gap < tolerance, gap

    # The no-grad forward above is what once made bitsandbytes repack 4-bit weights for CPU inference, after
    # which training got zero gradients silently (quantize.keep_trainable_through): train after it.
    cls = method_class("prompt_tuning")
    method = cls(cls.config_class.from_dict({"num_virtual_tokens": 4}), quantized)
    stored = {n: p.detach().clone() for n, p in quantized.model.named_parameters()}
    events: list[dict] = []
    train(method, GenerationTask(method, {"max_length": 32}, ROWS, []),
          TrainingConfig(steps=10, batch_size=4, lr=0.1, log_every=1, schedule="constant"), emit=events.append)
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert losses[-1] < 0.9 * losses[0], losses  # measured nf4 5.86 -> 4.60
    assert all(torch.equal(p, stored[n]) for n, p in quantized.model.named_parameters())

    path = save_checkpoint(tmp_path / "p.pb", method, step=10)
    spec = spec_for_checkpoint(load_checkpoint(path).base_model)
    assert spec.quantization == kind  # inference loads the base the prompt was trained on


def test_a_prompt_trained_on_nf4_loads_on_the_full_precision_base(tmp_path):
    from softprompt_worker.training.checkpoints import build_method_from_checkpoint

    quantized = _model("nf4")
    cls = method_class("prefix_tuning")
    method = cls(cls.config_class.from_dict({"num_virtual_tokens": 2}), quantized)
    path = save_checkpoint(tmp_path / "p.pb", method, step=0)
    loaded = build_method_from_checkpoint(load_checkpoint(path), _model(None))  # fingerprints agree
    assert torch.equal(loaded.prefix, method.prefix)


def test_bad_quantization_names_the_field_and_a_missing_package_says_what_to_install(monkeypatch):
    with pytest.raises(InvalidArgumentError, match="model.quantization"):
        ModelSpec.from_dict({"tiny": "gpt2", "quantization": "int4"})
    real_import = builtins.__import__

    def no_bitsandbytes(name, *args, **kwargs):
        if name == "bitsandbytes":
            raise ImportError("no bitsandbytes")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_bitsandbytes)
    with pytest.raises(DependencyMissingError, match="bitsandbytes"):
        _model("nf4")


def test_pretrained_models_are_quantized_while_they_load(monkeypatch):
    import transformers

    from softprompt_worker.models import _load_pretrained

    calls = {}
    config = SimpleNamespace(is_encoder_decoder=False, architectures=["LlamaForCausalLM"], model_type="llama")
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", lambda *a, **k: config)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: SimpleNamespace())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: calls.update(k) or SimpleNamespace())
    _load_pretrained(ModelSpec(name_or_path="some/llama", quantization="nf4"), torch.bfloat16, torch.device("cpu"))
    q = calls["quantization_config"]
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_compute_dtype == torch.bfloat16
    assert calls["device_map"] == torch.device("cpu")


def test_a_model_too_large_to_build_whole_is_built_one_quantized_layer_at_a_time():
    """The path the GPU bench's 70B shape takes (quantize.materialize_quantized), here on the CPU: built on
    the meta device, every tensor ends up real, linear layers quantized, rotary tables rebuilt, and it runs
    forward and backward to the input."""
    import bitsandbytes as bnb
    from transformers import AutoModelForCausalLM

    from softprompt_worker.models.quantize import materialize_quantized
    from softprompt_worker.models.tiny import tiny_config

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(tiny_config("llama"), attn_implementation="sdpa")
    materialize_quantized(model, "nf4", torch.device("cpu"), torch.float32, std=0.05, seed=1)
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) == 14  # 7 per layer, not the head
    embeds = model.get_input_embeddings()(torch.tensor([[5, 6, 7, 8]])).detach().requires_grad_()
    model.eval()(inputs_embeds=embeds).logits.sum().backward()
    assert embeds.grad.abs().sum() > 0 and torch.isfinite(embeds.grad).all()


def test_cross_eval_bench_smoke_fills_the_whole_table(tmp_path):
    """bench/quantization/cross_eval.py --smoke: every prompt evaluated on every base (numbers not checked:
    a tiny random model)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "quantization" / "cross_eval.py"
    spec = importlib.util.spec_from_file_location("bench_cross_eval", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    record = module.main(["--smoke", "--out", str(tmp_path / "x.json")])
    assert set(record["untuned"]) == {"f32", "int8", "nf4"}
    assert all(set(r["evaluated_on"]) == {"f32", "int8", "nf4"} for r in record["trained_on"].values())
    assert (tmp_path / "x.md").read_text().count("| trained on") == 3


def test_a_worker_start_does_not_print_bitsandbytes_kernel_notices():
    """peft imports bitsandbytes whenever it is installed, and bitsandbytes warns at import that its hub kernel
    for CPU 4-bit matmuls cannot be fetched (offline): on every worker start, in every CLI command's stderr.
    The worker's logging keeps that logger quiet (logging_setup.QUIET); NF4 on the CPU works without it."""
    import subprocess
    import sys

    code = ("from softprompt_worker.serving.logging_setup import setup_logging; setup_logging('info'); "
            "import peft, bitsandbytes, logging; logging.getLogger('softprompt_worker').warning('still shown')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "still shown" in proc.stderr
    assert "bitsandbytes" not in proc.stderr, proc.stderr[-2000:]
