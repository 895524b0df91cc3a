"""A model's shape for the memory planner: sizes read from its transformers config, parameters counted
on the ``meta`` device (modules and shapes, no weights: an 8B model costs no memory to plan)."""

from __future__ import annotations

from dataclasses import dataclass

from softprompt_worker.errors import InvalidArgumentError


@dataclass(frozen=True)
class ModelShape:
    """The sizes the estimate needs. ``family`` picks the per-layer activation formula (activations.py):
    ``"llama"`` (RMSNorm, gated MLP: Llama, Mistral, Qwen2, SmolLM2, ...) or ``"gpt2"`` (LayerNorm, plain
    MLP: GPT-2, GPT-NeoX-like); both are checked against measured peaks on tiny models (docs/memory.md)."""

    family: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_positions: int | None
    params: int  # every frozen parameter (tied weights once)
    linear_params: int  # of which in nn.Linear layers other than the output head: what quantization packs
    linear_rows: int  # output rows of those layers (int8 keeps one f32 scale per row)
    buffer_bytes: int  # buffers (rotary frequencies, position ids), at their own dtypes

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim


def shape_of(model) -> ModelShape:
    """The shape of a transformers decoder-only LM (real or on the ``meta`` device)."""
    import torch
    from torch import nn

    cfg = model.config
    if getattr(cfg, "is_encoder_decoder", False):
        raise InvalidArgumentError(f"plan: {cfg.model_type} is an encoder-decoder model; the memory planner "
                                   "covers decoder-only LMs (docs/memory.md)")
    get = lambda *names: next((getattr(cfg, n) for n in names if getattr(cfg, n, None) is not None), None)  # noqa: E731
    hidden = int(get("hidden_size", "n_embd", "d_model"))
    heads = int(get("num_attention_heads", "n_head"))
    kv_heads = int(get("num_key_value_heads") or heads)
    head_dim = int(get("head_dim") or hidden // heads)
    gated = getattr(cfg, "hidden_act", None) is not None and cfg.model_type not in ("gpt2", "gpt_neox", "gptj", "bert")
    family = "llama" if gated and getattr(cfg, "rms_norm_eps", None) is not None else "gpt2"
    intermediate = int(get("intermediate_size", "n_inner") or 4 * hidden)
    head = model.get_output_embeddings()
    linear = rows = 0
    for module in model.modules():
        if isinstance(module, nn.Linear) and module is not head:
            linear += module.weight.numel()
            rows += module.weight.shape[0]
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers() if b.dtype != torch.bool)
    return ModelShape(family=family, hidden=hidden, layers=int(get("num_hidden_layers", "n_layer", "num_layers")),
                      heads=heads, kv_heads=kv_heads, head_dim=head_dim, intermediate=intermediate,
                      vocab=int(cfg.vocab_size), max_positions=get("max_position_embeddings", "n_positions"),
                      params=params, linear_params=linear, linear_rows=rows, buffer_bytes=buffers)
