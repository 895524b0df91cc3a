"""The one interface every soft-prompt method implements.

A method is an ``nn.Module`` whose parameters are exactly the trainable soft parameters (virtual
tokens, prefixes, reparameterisation MLPs, bottlenecks). It holds the frozen base model by reference,
never as a submodule, so ``method.state_dict()`` is the soft state and nothing else, and an optimizer
over ``method.parameters()`` can never touch a frozen weight.

Each method owns its own input injection: how its vectors reach the model (prepended embeddings,
per-layer key/values, appended suffix, passage-conditioned vectors) lives in its module, not in a
central switch. Tasks (``tasks/``) call the method-specific forward they need.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import torch
from torch import nn

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.fields import check_fields, check_values
from softprompt_worker.limits import MAX_NUM_VIRTUAL_TOKENS
from softprompt_worker.models import FrozenModel
from softprompt_worker.methods.workload import Job, Pass, Sizes


class MethodConfig:
    """Base for method configs: dataclasses whose options are JSON scalars or string enums.

    ``from_dict`` rejects unknown fields; each subclass validates cross-field rules in ``validate``
    and quotes the bad value in the error.
    """

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None):
        if raw is not None and not isinstance(raw, dict):
            raise InvalidArgumentError(f"method_config: expected a map, got {type(raw).__name__}")
        raw = dict(raw or {})
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(map(str, set(raw) - fields))
        if unknown:
            raise InvalidArgumentError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(fields)}")
        check_fields(cls, raw)
        try:
            config = cls(**raw)
        except TypeError as exc:
            raise InvalidArgumentError(f"{cls.__name__}: {exc}") from exc
        check_values(config)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise InvalidArgumentError for a bad value; override per method."""

    def check_num_virtual_tokens(self) -> None:
        """``num_virtual_tokens`` is an int in 1..MAX_NUM_VIRTUAL_TOKENS (every method that has one)."""
        n = getattr(self, "num_virtual_tokens")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NUM_VIRTUAL_TOKENS:
            raise InvalidArgumentError(f"num_virtual_tokens: must be an integer in 1..{MAX_NUM_VIRTUAL_TOKENS}, "
                                       f"got {n!r}")

    def check_init(self, allowed: tuple[str, ...]) -> None:
        """``init`` is one of ``allowed``; ``init_text`` is given (non-empty) when ``init`` is ``"text"`` and
        refused otherwise (a text that would be silently ignored is a mistake). The TS builders' rule too."""
        init, text = getattr(self, "init"), getattr(self, "init_text")
        if init not in allowed:
            raise InvalidArgumentError(f"init: {init!r} is not one of {', '.join(allowed)}")
        if init == "text" and not text:
            raise InvalidArgumentError("init_text: required (non-empty) when init is 'text'")
        if init != "text" and text is not None:
            raise InvalidArgumentError(f"init_text: only used when init is 'text' (init is {init!r})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), as stored in ``Checkpoint.method_config_json``."""
        return json.dumps(self.to_dict(), sort_keys=True)


class SoftPromptMethod(nn.Module):
    """A soft-prompt method attached to one frozen base model.

    A method is one unit: its class declares, where it is defined, everything callers ask about it, so
    nothing else lists method names (adding a method is its module plus one line in ``registry.py``):

    - ``name``: the registry key (same in module, proto ``Checkpoint.method`` and TS literal);
    - ``config_class``: its ``MethodConfig`` dataclass;
    - ``tasks``: the task names (``tasks/registry.py``) that train it; a task checks it is among them;
    - ``training_passes``, ``plan_sizes``, ``plan_seq_field``: what one training micro-batch runs, for the
      memory planner (``planner/``), which turns it into bytes;
    - ``peft_type``: PEFT's ``peft_type`` of the equivalent adapter (``"PROMPT_TUNING"``...), or None
      when PEFT has no such format; a method with one implements ``to_peft`` and ``from_peft``
      (``peft_io.py`` reads and writes the files, the method maps its config and tensor).

    Subclasses build their parameters in ``__init__(config, frozen)`` and add the forward entry points
    their tasks need; serving (``ops/``) goes through the same entry points.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]]
    tasks: ClassVar[frozenset[str]]
    peft_type: ClassVar[str | None] = None
    plan_seq_field: ClassVar[str] = "training.max_length"  # the job field that sets the plan's ``seq``

    def __init__(self, config: MethodConfig, frozen: FrozenModel):
        super().__init__()
        self.config = config
        # Not a submodule: keeps the base weights out of state_dict(), parameters() and .to() calls.
        object.__setattr__(self, "frozen", frozen)

    # -- memory planning (planner/) -------------------------------------------------------------------
    @classmethod
    def training_passes(cls, job: Job) -> list[Pass]:
        """The forward passes of the frozen model in one training micro-batch of ``job``."""
        raise NotImplementedError(f"{cls.name}: no training workload for the memory planner")

    def plan_sizes(self, seq: int, options: dict[str, Any]) -> Sizes:
        """The sizes a plan of this method reads, given the training ``seq`` (``max_length``) and the method
        config + task ``options`` (a method may add facts its ``training_passes`` reads)."""
        return Sizes(seq=seq, virtual_tokens=getattr(self.config, "num_virtual_tokens", None) or 0)

    # -- PEFT export/import (methods whose ``peft_type`` is set) -----------------------------------
    def to_peft(self, common: dict[str, Any]) -> tuple[Any, torch.Tensor]:
        """``(peft config, tensor)`` of this prompt as a PEFT adapter: the config built with the
        ``common`` keyword arguments (task type, ``num_virtual_tokens``, base model) and the one tensor
        PEFT saves as ``prompt_embeddings``. InvalidArgumentError when this instance cannot be expressed."""
        raise InvalidArgumentError(f"checkpoint_export_peft: {self.name!r} has no PEFT equivalent")

    @classmethod
    def from_peft(cls, raw: dict[str, Any], frozen: FrozenModel) -> tuple["SoftPromptMethod", torch.Tensor]:
        """``(method on frozen, its tensor that receives the adapter's prompt_embeddings)`` for a PEFT adapter
        whose ``adapter_config.json`` is ``raw``. ``peft_io`` checks the shape and copies the weights in."""
        raise InvalidArgumentError(f"checkpoint_import_peft: {cls.name!r} has no PEFT equivalent")

    # -- bookkeeping shared by all methods -------------------------------------------------------
    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def trainable_fraction(self) -> float:
        """Trainable parameters as a fraction of the base model's parameters."""
        base = sum(p.numel() for p in self.frozen.model.parameters())
        return self.num_trainable_parameters() / max(base, 1)

    def soft_state(self) -> dict[str, torch.Tensor]:
        """Everything a checkpoint must keep to use *and* resume this method (MLPs included)."""
        return {k: v.detach() for k, v in self.state_dict().items()}

    def load_soft_state(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise InvalidArgumentError(
                f"{self.name}: checkpoint tensors do not match the method (missing {missing}, unexpected {unexpected})")


class LMSoftPromptMethod(SoftPromptMethod):
    """A method that conditions a language model (decoder-only or encoder–decoder) on soft vectors.

    Subclasses say *what* they inject into one row by returning an ``Injection`` from ``injection()``
    (virtual input embeddings, per-attention-module key/value prefixes, or both); ``methods/injection.py``
    says *how* rows are packed and run, so one batch may mix rows of different prompts (see
    ``injection.run_lm``). ``forward_lm`` is the entry point tasks use.
    """

    def injection(self):  # -> injection.Injection
        """This prompt's contribution to one row, built from the current (trainable) parameters."""
        raise NotImplementedError

    def forward_lm(self, input_ids, attention_mask, labels=None, decoder_input_ids=None,
                   decoder_attention_mask=None, prompt_mask=None, right_padded: bool = False):
        """Runs the frozen model with this method's vectors injected.

        Returns the transformers ModelOutput with ``logits`` aligned to the ORIGINAL token positions
        (virtual positions stripped) and ``.loss`` computed only on ``labels != -100`` when labels are
        given (mean over those tokens). Decoder-only: ``input_ids`` is prompt+target concatenated,
        right-padded, ``labels`` aligned with it (the shift happens here). Enc–dec: ``input_ids`` /
        ``attention_mask`` go to the encoder, ``labels`` / ``decoder_*`` to the decoder
        (``decoder_input_ids`` default: ``labels`` shifted right).

        Args:
            input_ids: (batch, seq) long.
            attention_mask: (batch, seq), 1 for real tokens.
            labels: (batch, seq) decoder-only / (batch, target_seq) enc–dec, -100 = ignored.
            prompt_mask: optional bool (batch,), on the host (a list or CPU tensor): True marks rows where
                the soft prompt is NOT applied (they run through the bare model), for mixed batches.
            right_padded: the rows are right-padded (real tokens first): lets the logits be a view of the
                model's output, not a copy (``injection.run_lm``).
        """
        from softprompt_worker.methods.injection import run_lm

        injection = self.injection()
        rows = [injection] * input_ids.shape[0]
        if prompt_mask is not None:
            rows = [None if bool(off) else row for row, off in zip(rows, prompt_mask.tolist())]
        return run_lm(self.frozen, rows, input_ids, attention_mask, labels=labels,
                      decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask,
                      right_padded=right_padded)
