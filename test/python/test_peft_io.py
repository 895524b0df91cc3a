"""PEFT interop: our export loads in PEFT with the same logits; a PEFT-saved prompt imports into ours
with the same logits; what PEFT cannot represent is refused with a clear error."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.prefix_tuning import PrefixTuning, PrefixTuningConfig
from softprompt_worker.methods.p_tuning import PTuning, PTuningConfig
from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.peft_io import export_peft, import_peft

torch.set_num_threads(1)
peft = pytest.importorskip("peft")

CASES = [("gpt2", "prompt_tuning"), ("llama", "prompt_tuning"), ("t5", "prompt_tuning"), ("bart", "prompt_tuning"),
         ("gpt2", "prefix_tuning"), ("llama", "prefix_tuning"),  # llama: grouped-query attention
         ("gpt2", "p_tuning"), ("llama", "p_tuning"), ("t5", "p_tuning")]


def _inputs(frozen):
    enc = frozen.tokenizer(["hello there", "hi"], padding=True, return_tensors="pt")  # right-padded
    dec = torch.tensor([[frozen.config.decoder_start_token_id or 0, 5, 6]] * 2) if frozen.is_encoder_decoder else None
    return enc["input_ids"], enc["attention_mask"], dec


def _ours(method, ids, mask, dec):
    with torch.no_grad():
        return method.forward_lm(ids, mask, decoder_input_ids=dec).logits


def _peft_logits(peft_model, ids, mask, dec):
    with torch.no_grad():
        if dec is not None:
            return peft_model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        logits = peft_model(input_ids=ids, attention_mask=mask).logits
        return logits[:, -ids.shape[1]:]  # prompt tuning returns the virtual positions too


def _method(name, frozen, seed=5):
    if name == "p_tuning":  # the export holds the encoder's output, the LSTM variant's too
        return PTuning(PTuningConfig(num_virtual_tokens=4, encoder="lstm", encoder_hidden_size=16, seed=seed), frozen)
    if name == "prompt_tuning":
        return PromptTuning(PromptTuningConfig(num_virtual_tokens=4, init="random", seed=seed), frozen)
    method = PrefixTuning(PrefixTuningConfig(num_virtual_tokens=4, prefix_projection=True, seed=seed), frozen)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for p in method.parameters():
            p.normal_(0, 0.5)  # a non-trivial MLP: the export must hold its output
    return method


def _compare(frozen, ours, theirs, ids, mask):
    if frozen.is_encoder_decoder:
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    else:  # right padding: compare real positions
        real = mask.bool()
        torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family,name", CASES)
def test_export_loads_in_peft_with_same_logits(tmp_path, family, name):
    frozen = load_frozen_model(ModelSpec(tiny=family))
    method = _method(name, frozen)
    export_peft(method, tmp_path / "adapter")
    assert {p.name for p in (tmp_path / "adapter").iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    base = load_frozen_model(ModelSpec(tiny=family)).model  # the same seeded weights, a separate copy
    peft_model = peft.PeftModel.from_pretrained(base, str(tmp_path / "adapter"))
    ids, mask, dec = _inputs(frozen)
    ours, theirs = _ours(method, ids, mask, dec), _peft_logits(peft_model, ids, mask, dec)
    bare = _ours(_method(name, frozen, seed=6), ids, mask, dec)  # another prompt: the comparison is not vacuous
    assert not torch.allclose(ours, bare, atol=1e-3)
    _compare(frozen, ours, theirs, ids, mask)


@pytest.mark.parametrize("family,name", CASES)
def test_import_peft_saved_prompt(tmp_path, family, name):
    base = load_frozen_model(ModelSpec(tiny=family)).model
    common = dict(task_type="SEQ_2_SEQ_LM" if base.config.is_encoder_decoder else "CAUSAL_LM", num_virtual_tokens=3)
    if name == "prompt_tuning":
        config = peft.PromptTuningConfig(**common, num_transformer_submodules=1)
    elif name == "p_tuning":
        config = peft.PromptEncoderConfig(**common, num_transformer_submodules=1, encoder_hidden_size=16)
    else:
        config = peft.PrefixTuningConfig(**common)
    peft_model = peft.get_peft_model(base, config)
    with torch.no_grad():
        for p in peft_model.prompt_encoder.parameters():
            p.normal_(0, 0.5)
    peft_model.save_pretrained(str(tmp_path / "peft"))
    peft_model.eval()
    frozen = load_frozen_model(ModelSpec(tiny=family))
    if name == "p_tuning":  # PEFT's inference-mode file holds the encoded vectors only: save it that way
        peft_model.peft_config["default"].inference_mode = True
        peft_model.save_pretrained(str(tmp_path / "peft"))
    method = import_peft(tmp_path / "peft", frozen)
    # A P_TUNING file keeps the encoded vectors, not the encoder: it is the prompt-tuning prompt it equals.
    assert method.name == ("prompt_tuning" if name == "p_tuning" else name)
    ids, mask, dec = _inputs(frozen)
    _compare(frozen, _ours(method, ids, mask, dec), _peft_logits(peft_model, ids, mask, dec), ids, mask)


def test_encoder_decoder_prefix_export_is_refused(tmp_path):
    frozen = load_frozen_model(ModelSpec(tiny="t5"))
    with pytest.raises(InvalidArgumentError, match="cross-attention"):
        export_peft(PrefixTuning(PrefixTuningConfig(num_virtual_tokens=2), frozen), tmp_path)


def test_ops_round_trip(tmp_path):
    """checkpoint -> PEFT adapter -> checkpoint keeps the prompt; the reimported prompt serves generate."""
    from softprompt_worker.training.checkpoints import load_checkpoint, save_checkpoint
    from softprompt_worker.ops import peft as peft_ops  # noqa: F401 - registers the ops
    from softprompt_worker.serving.handlers import OpContext, Request, WorkerState, get_op

    def call(state, name, body):
        return get_op(name).handler(Request(1, name, body), OpContext(1, name, state, lambda *a: None)).body

    frozen = load_frozen_model(ModelSpec(tiny="llama"))
    method = _method("prefix_tuning", frozen)
    source = save_checkpoint(tmp_path / "src.pb", method, step=7)
    state = WorkerState()
    out = call(state, "checkpoint_export_peft", {"checkpoint": str(source), "out_dir": str(tmp_path / "ad")})
    assert out["method"] == "prefix_tuning"
    back = call(state, "checkpoint_import_peft", {"adapter_dir": out["out_dir"], "model": {"tiny": "llama"},
                                                  "out": str(tmp_path / "back.pb")})
    record = load_checkpoint(back["path"])
    assert record.method == "prefix_tuning" and record.method_config["prefix_projection"] is False
    with torch.no_grad():
        torch.testing.assert_close(record.tensors["prefix"], method.flat_prefix())
    with pytest.raises(InvalidArgumentError, match="adapter_dir"):
        call(state, "checkpoint_import_peft", {"model": {"tiny": "llama"}, "out": str(tmp_path / "x.pb")})


def test_a_folder_with_only_adapter_model_bin_says_so(tmp_path) -> None:
    # older PEFT saved a pickle; the worker never unpickles, and says what to do instead of "has no None"
    from softprompt_worker.errors import CheckpointInvalidError
    from softprompt_worker.peft_io import import_peft

    (tmp_path / "adapter_config.json").write_text('{"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4}')
    (tmp_path / "adapter_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(CheckpointInvalidError, match="adapter_model.bin .* no adapter_model.safetensors.*safe_serialization"):
        import_peft(tmp_path, None)
