"""Where soft vectors start: the one initialisation rule of every method that learns input-space vectors
(prompt tuning's virtual tokens, suffix tuning's suffix, passage tuning's prompt).

- ``"text"``: the embeddings of a text's tokens, repeated or cut to ``n`` (PEFT's TEXT init; the SPT and
  PSPT papers start from a hard prompt this way).
- ``"vocab"``: the embeddings of ``n`` tokens drawn from the first ``VOCAB_SAMPLE_SIZE`` ids (Lester et al.
  sample the 5,000 most common tokens; BPE ids are roughly ordered by merge frequency).
- ``"random"``: a normal at the embedding table's standard deviation.

Vectors are read through the embedding *module*, not its raw table, so models that scale their embeddings
(BART, Gemma) start where their own tokens live. Draws come from a CPU generator, so a seed gives the same
vectors on a GPU and on a CPU, and only the ``n`` rows needed are read: no copy of a 128k x 4096 table.
"""

from __future__ import annotations

import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.models import FrozenModel

INITS = ("text", "vocab", "random")
VOCAB_SAMPLE_SIZE = 5000


def initial_vectors(frozen: FrozenModel, n: int, init: str, text: str | None = None, *,
                    generator: torch.Generator | None = None, field: str = "init_text") -> torch.Tensor:
    """``(n, hidden)`` float32 starting vectors on the model's device.

    ``generator``: a CPU generator for "vocab"/"random" (default: torch's global CPU generator, which the
    train op seeds per job). ``field`` names the text option in errors.
    """
    embed = frozen.input_embeddings()
    device = embed.weight.device
    if init == "random":
        noise = torch.randn(n, embed.weight.shape[1], generator=generator)  # (n, hidden) on the CPU
        return noise.to(device) * embedding_std(embed.weight)  # (n, hidden) f32
    if init == "text":
        ids = frozen.tokenizer(text or "", add_special_tokens=False)["input_ids"]
        if not ids:
            raise InvalidArgumentError(f"{field}: {text!r} tokenises to nothing")
        ids = torch.tensor((ids * -(-n // len(ids)))[:n])  # (n,)
    elif init == "vocab":
        vocab = min(VOCAB_SAMPLE_SIZE, embed.weight.shape[0], len(frozen.tokenizer))
        ids = torch.randint(0, vocab, (n,), generator=generator)  # (n,)
    else:
        raise InvalidArgumentError(f"init: {init!r} is not one of {', '.join(INITS)}")
    with torch.no_grad():
        return embed(ids.to(device)).float()  # (n, hidden)


@torch.no_grad()
def embedding_std(weight: torch.Tensor, rows: int = 8192) -> torch.Tensor:
    """The standard deviation of all entries of ``weight`` ``(vocab, hidden)``, a 0-dim f32 tensor on its
    device, computed ``rows`` rows at a time in f32 (two passes): never a full f32 copy of the table."""
    count = weight.numel()
    mean = sum(chunk.float().sum() for chunk in weight.split(rows)) / count
    squares = sum(((chunk.float() - mean) ** 2).sum() for chunk in weight.split(rows))
    return (squares / max(count - 1, 1)).sqrt()
