"""Tiny models built from configs, for tests and demos that must run offline.

Each family is a real transformers architecture at toy size, with a byte-level tokenizer that needs no
download: 256 byte tokens plus a few special tokens. Weights are random (seeded) unless a test
pretrains them.

Families: ``gpt2``, ``llama`` (grouped-query attention: 4 query heads share 2 key/value heads),
``t5``, ``bart`` (encoder–decoders) and ``bert`` (encoder).
"""

from __future__ import annotations

from typing import Any

TINY_FAMILIES = ("gpt2", "llama", "t5", "bart", "bert")

# Special tokens follow the 256 byte tokens.
PAD, BOS, EOS, UNK, CLS, SEP, MASK = "<pad>", "<s>", "</s>", "<unk>", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, CLS, SEP, MASK)
VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)


def byte_tokenizer(family: str):
    """A byte-level fast tokenizer (no merges) whose special-token template matches ``family``.

    gpt2/llama add nothing; t5 appends ``</s>``; bart wraps in ``<s> … </s>``; bert in ``[CLS] … [SEP]``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=_byte_of)
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for offset, token in enumerate(SPECIAL_TOKENS):
        vocab[token] = 256 + offset
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    template = {
        "t5": ("$A " + EOS, [(EOS, vocab[EOS])]),
        "bart": (f"{BOS} $A {EOS}", [(BOS, vocab[BOS]), (EOS, vocab[EOS])]),
        "bert": (f"{CLS} $A {SEP}", [(CLS, vocab[CLS]), (SEP, vocab[SEP])]),
    }.get(family)
    if template is not None:
        tok.post_processor = processors.TemplateProcessing(single=template[0], special_tokens=template[1])
    specials: dict[str, Any] = {"pad_token": PAD, "unk_token": UNK, "bos_token": BOS, "eos_token": EOS}
    if family == "bert":
        specials.update(cls_token=CLS, sep_token=SEP, mask_token=MASK)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


def tiny_config(family: str, **overrides: Any):
    """The transformers config of a tiny model of ``family``; ``overrides`` replace any field."""
    from transformers import BartConfig, BertConfig, GPT2Config, LlamaConfig, T5Config

    ids = {"pad_token_id": 256, "bos_token_id": 257, "eos_token_id": 258}
    if family == "gpt2":
        cfg = dict(vocab_size=VOCAB_SIZE, n_positions=256, n_embd=64, n_layer=2, n_head=4, **ids)
        return GPT2Config(**{**cfg, **overrides})
    if family == "llama":
        cfg = dict(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, **ids)
        return LlamaConfig(**{**cfg, **overrides})
    if family == "t5":
        cfg = dict(vocab_size=VOCAB_SIZE, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
                   num_heads=4, decoder_start_token_id=256, pad_token_id=256, eos_token_id=258)
        return T5Config(**{**cfg, **overrides})
    if family == "bart":
        cfg = dict(vocab_size=VOCAB_SIZE, d_model=64, encoder_layers=2, decoder_layers=2,
                   encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                   decoder_ffn_dim=128, max_position_embeddings=256, decoder_start_token_id=258,
                   forced_eos_token_id=258, **ids)
        return BartConfig(**{**cfg, **overrides})
    if family == "bert":
        cfg = dict(vocab_size=VOCAB_SIZE, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=128, max_position_embeddings=256, pad_token_id=256)
        return BertConfig(**{**cfg, **overrides})
    raise ValueError(f"unknown tiny model family {family!r}; expected one of {', '.join(TINY_FAMILIES)}")


def tiny_model(family: str, *, seed: int = 0, device=None, dtype=None, quantization: str | None = None,
               **overrides: Any):
    """A randomly initialised (seeded) model of ``family`` and its byte tokenizer: ``(model, tokenizer)``.

    Built directly on ``device`` in ``dtype`` (default: the CPU, f32), so a config the size of a real model
    (the GPU benchmark's 8B and 70B shapes) never needs a host copy. The weights follow from the seed and
    the device's generator: the same seed gives other weights on a GPU than on the CPU. ``quantization``
    ("int8" | "nf4", quantize.py) quantizes the linear layers of the built model; a quantized model too large
    to build in full precision on its GPU (over half its free memory) is built layer by layer instead
    (``quantize.materialize_quantized``: other random weights, the same shapes).
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from softprompt_worker.models.quantize import materialize_quantized, quantize_linears

    config = tiny_config(family, **overrides)
    factory = {"gpt2": AutoModelForCausalLM, "llama": AutoModelForCausalLM, "t5": AutoModelForSeq2SeqLM,
               "bart": AutoModelForSeq2SeqLM, "bert": AutoModel}[family]
    device = torch.device(device or "cpu")
    dtype = dtype or torch.float32
    build = dict(attn_implementation=_attention_for(family), dtype=dtype)
    if quantization is not None and device.type == "cuda":
        with torch.device("meta"):
            model = factory.from_config(config, **build)
        full_bytes = sum(p.numel() for p in model.parameters()) * torch.finfo(dtype).bits // 8
        if full_bytes > torch.cuda.mem_get_info(device)[0] // 2:
            std = getattr(config, "initializer_range", 0.02)
            materialize_quantized(model, quantization, device, dtype, std=std, seed=seed)
            return model, byte_tokenizer(family)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
        torch.manual_seed(seed)
        model = factory.from_config(config, **build)
    if quantization is not None:
        quantize_linears(model, quantization, dtype)
    return model, byte_tokenizer(family)


def _attention_for(family: str) -> str:
    # T5's relative position bias has no SDPA path in transformers; the rest use SDPA.
    return "eager" if family == "t5" else "sdpa"


def _byte_of(ch: str) -> int:
    """Inverse of GPT-2's byte→unicode table, so token id == byte value."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    code = ord(ch)
    if code in printable:
        return code
    shifted = [b for b in range(256) if b not in printable]
    return shifted[code - 256]
