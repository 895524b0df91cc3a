"""Passage-specific prompt tuning (PSPT) for reranking with a frozen causal LM.

Wu et al., "Passage-specific Prompt Tuning for Passage Reranking in Question Answering with Large
Language Models", SIGIR 2024 Gen-IR workshop. The reranker keeps UPR's score (Sachan et al., 2022),
the log-likelihood of the query given the passage (``scoring.py``), and learns two things:

- a **soft prompt** ``S`` of ``n`` vectors shared by all passages, initialised from the token embeddings
  of UPR's instruction (``" Please write a question based on this passage.\\nQuestion:"``), so at step
  0 the prompt slot reads exactly like the hard prompt;
- **passage-specific vectors** ``V``: a small bottleneck ``up(act(down(x)))`` (``hidden → r → hidden``,
  LoRA/adapter-like) applied to the passage's own frozen token embeddings. With ``residual`` (default)
  the output is ``x + up(act(down(x)))`` and ``up`` starts at zero, so ``V`` starts as the plain
  embeddings and training learns a correction.

The authors published no code; these choices are ours and are options:

- ``passage_vectors="pooled"`` (default): the passage's embeddings are mean-pooled into ``m``
  contiguous chunks (``num_passage_vectors``; adaptive pooling, so short passages repeat tokens), then
  the bottleneck maps each chunk: ``m`` extra positions, cheap for long passages.
  ``"per_token"``: the bottleneck maps every passage token, giving one extra vector per token (the
  passage is read twice: as itself and as its learned re-encoding); most expressive, twice the passage
  length. ``"none"``: no passage vectors (plain prompt tuning of the reranker, an ablation).
- Layout (``order``): ``"passage_first"``: ``[BOS][Passage: …][V][S][ query]`` (UPR's order: the
  instruction follows the passage) or ``"prompt_first"``: ``[BOS][S][V][Passage: …][ query]``. ``V``
  always sits next to ``S``, a per-passage extension of the prompt.
- Trainable parameters are kept in float32 and cast to the model's dtype when injected.

The base model stays frozen (its embedding layer included); ``parameters()`` are the prompt and the
bottleneck only. Train it with the ``reranking`` task (``losses/query_likelihood.py``: NLL of the query
given its positive passage plus a margin term over negatives).

    >>> method = PassageTuning(PassageTuningConfig(), frozen)
    >>> batch = method.encode_pairs(["who wrote it?"], ["A passage.", "Another."], [0, 0], [0, 1])
    >>> method(batch).log_likelihood.shape                 # (2,)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.fields import option
from softprompt_worker.limits import MAX_HIDDEN_SIZE, MAX_NUM_VIRTUAL_TOKENS, MAX_SEQUENCE_LENGTH
from softprompt_worker.models import FrozenModel
from softprompt_worker.inference.scoring import ORDERS, UPR_INSTRUCTION, Layout, PairBatch, Scores, pair_log_likelihood, require_causal_lm, \
    tokenize
from softprompt_worker.methods.base import MethodConfig, SoftPromptMethod
from softprompt_worker.methods.init_vectors import initial_vectors
from softprompt_worker.methods.workload import Job, Pass, Sizes

log = logging.getLogger(__name__)

PASSAGE_VECTORS = ("pooled", "per_token", "none")
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}
INITS = ("text", "vocab")
PASSAGE_CONSTANT_TOKENS = 4  # BOS and "Passage: ": the constant segments of a row (a few tokens in any tokenizer)
DEPRECATED_ALIASES = {"prompt_init": "init", "prompt_init_text": "init_text"}  # old name -> name


@dataclass
class PassageTuningConfig(MethodConfig):
    """Options of passage-specific prompt tuning. All are JSON scalars or string enums.

    Args:
        num_virtual_tokens: soft prompt length ``n``. ``None``: the token count of ``init_text``
            (the prompt then starts as exactly UPR's instruction). Otherwise the text's tokens are
            repeated/cut to ``n``, as PEFT's TEXT init does.
        init: ``"text"``: from ``init_text`` (the paper initialises from a hard prompt);
            ``"vocab"``: embeddings of random vocabulary tokens (Lester et al., 2021); both through
            ``init_vectors.initial_vectors``, the rule every method shares.
        init_text: the instruction; UPR's by default (also the hard prompt of the UPR layout).
        passage_vectors: ``"pooled"`` | ``"per_token"`` | ``"none"`` (see the module docstring).
        num_passage_vectors: ``m`` for ``"pooled"``. 8 is our default (no value in the paper).
        bottleneck_dim: ``r``, the bottleneck width. 64 keeps it ~``2 * 64 * hidden`` parameters
            (0.5M on a 4096-wide 7B model), in line with adapter sizes (Houlsby et al., 2019).
        activation: ``"gelu"`` | ``"relu"`` | ``"tanh"`` between the projections.
        residual: ``x + up(act(down(x)))`` with ``up`` zero-initialised (starts at the embeddings), or
            ``up(act(down(x)))`` with default init.
        order: ``"passage_first"`` (UPR) | ``"prompt_first"`` (see ``scoring.Layout``).
        passage_prefix: hard text before the passage.
        query_prefix: joined to each query before tokenizing (``" "``: a word start for BPE tokenizers;
            use ``""`` for SentencePiece tokenizers that add their own).
        prepend_bos: start each row with the tokenizer's BOS token, when it has one.
        max_passage_tokens / max_query_tokens: longer texts are cut.

    ``prompt_init`` / ``prompt_init_text`` (the names before ``init`` / ``init_text``, as every other method
    spells them) are accepted as deprecated aliases, so older job files and checkpoints keep loading;
    giving an alias and its new name together is refused.
    """

    num_virtual_tokens: int | None = option(None, gt=0, le=MAX_NUM_VIRTUAL_TOKENS)
    init: str = option("text", choices=INITS)
    # The SDK leaves the default instruction to the worker (scoring.UPR_INSTRUCTION).
    init_text: str = option(UPR_INSTRUCTION, non_empty=True, sdk={"optional": True})
    passage_vectors: str = option("pooled", choices=PASSAGE_VECTORS)
    num_passage_vectors: int = option(8, gt=0, le=MAX_HIDDEN_SIZE)
    bottleneck_dim: int = option(64, gt=0, le=MAX_HIDDEN_SIZE)
    activation: str = option("gelu", choices=tuple(ACTIVATIONS))
    residual: bool = option(True)
    order: str = option("passage_first", choices=ORDERS)
    passage_prefix: str = option("Passage: ")
    query_prefix: str = option(" ")
    prepend_bos: bool = option(True)
    max_passage_tokens: int = option(256, gt=0, le=MAX_SEQUENCE_LENGTH, doc="longer passages are cut")
    max_query_tokens: int = option(64, gt=0, le=MAX_SEQUENCE_LENGTH, doc="longer queries are cut")

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None):
        """``MethodConfig.from_dict`` after renaming the deprecated ``prompt_init*`` aliases (job files and
        checkpoints written before the rename store them)."""
        if isinstance(raw, dict) and any(old in raw for old in DEPRECATED_ALIASES):
            raw = dict(raw)
            for old, new in DEPRECATED_ALIASES.items():
                if old not in raw:
                    continue
                if new in raw:
                    raise InvalidArgumentError(f"{old}: deprecated alias of {new}; give only {new}")
                log.warning("passage_tuning: %s is deprecated, use %s", old, new)
                raw[new] = raw.pop(old)
        return super().from_dict(raw)

    def validate(self) -> None:
        n = self.num_virtual_tokens
        if self.init == "text" and not self.init_text:
            raise InvalidArgumentError("init_text: must not be empty when init is 'text'")
        if self.init == "vocab" and n is None:
            raise InvalidArgumentError("num_virtual_tokens: must be set when init is 'vocab'")
        self.layout().validate()

    def layout(self) -> Layout:
        return Layout(order=self.order, passage_prefix=self.passage_prefix, instruction=self.init_text,
                      query_prefix=self.query_prefix, prepend_bos=self.prepend_bos,
                      max_passage_tokens=self.max_passage_tokens, max_query_tokens=self.max_query_tokens)


class Bottleneck(nn.Module):
    """``(…, hidden) -> (…, hidden)``: ``up(act(down(x)))``, plus ``x`` when residual."""

    def __init__(self, hidden: int, dim: int, activation: str, residual: bool):
        super().__init__()
        self.down = nn.Linear(hidden, dim)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(dim, hidden)
        self.residual = residual
        if residual:  # start as the identity map (LoRA-style zero init of the second projection)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.up(self.act(self.down(x)))  # (..., hidden)
        return x + out if self.residual else out


class PassageTuning(SoftPromptMethod):
    """Soft prompt ``self.prompt`` ``(n, hidden)`` + passage bottleneck ``self.bottleneck`` (f32)."""

    name = "passage_tuning"
    config_class = PassageTuningConfig
    tasks = frozenset({"reranking"})  # no PEFT equivalent: no peft_type
    plan_seq_field = "method_config.max_passage_tokens"
    config: PassageTuningConfig

    def __init__(self, config: PassageTuningConfig, frozen: FrozenModel):
        super().__init__(config, frozen)
        require_causal_lm(frozen)
        self.layout = config.layout()
        device = frozen.device
        self.prompt = nn.Parameter(self._initial_prompt())  # (n, hidden)
        self.bottleneck = None
        if config.passage_vectors != "none":
            self.bottleneck = Bottleneck(frozen.hidden_size, config.bottleneck_dim, config.activation,
                                         config.residual).to(device)

    def _initial_prompt(self) -> torch.Tensor:
        cfg = self.config
        n = cfg.num_virtual_tokens
        if n is None:  # the instruction's own length: the prompt starts as exactly UPR's hard prompt
            n = len(self.frozen.tokenizer(cfg.init_text, add_special_tokens=False)["input_ids"]) or 1
        return initial_vectors(self.frozen, n, cfg.init, cfg.init_text)  # (n, hidden)

    # -- the two slots (scoring.Conditioner) -------------------------------------------------------
    def prompt_embeddings(self) -> torch.Tensor:
        return self.prompt  # (n, hidden)

    def passage_vectors(self, embeds: torch.Tensor, lengths: torch.Tensor):
        """``(U, Lp, hidden)`` passage embeddings → ``((U, M, hidden), counts (U,))`` or None."""
        if self.bottleneck is None:
            return None
        x = embeds.float()  # (U, Lp, hidden)
        if self.config.passage_vectors == "pooled":
            x = adaptive_mean_pool(x, lengths, self.config.num_passage_vectors)  # (U, m, hidden)
            counts = torch.full_like(lengths, x.shape[1])  # (U,)
        else:
            counts = lengths  # (U,): one vector per passage token
        return self.bottleneck(x), counts  # (U, M, hidden), (U,)

    # -- memory planning (planner/) ----------------------------------------------------------------
    @classmethod
    def training_passes(cls, job: Job) -> list[Pass]:
        """One scored sequence per (query, passage) pair, ``BOS + "Passage: " + passage + m passage vectors +
        n prompt vectors + query``; logits for the query positions only. Pairs per row: the positive, up to
        ``max_hard_negatives`` hard negatives and (``negatives: both``) the batch's other positives."""
        B, T, n, o = job.batch_size, job.seq, job.virtual_tokens, job.options
        mode = o.get("negatives", "both")
        hard = min(job.negatives, o.get("max_hard_negatives", 4)) if mode in ("both", "hard") else 0
        in_batch = B - 1 if mode in ("both", "in_batch") else 0
        pairs = B * (1 + hard + in_batch)
        vectors = {"pooled": o.get("num_passage_vectors", 8), "per_token": T, "none": 0}[o.get("passage_vectors", "pooled")]
        query = o.get("max_query_tokens", 64)
        length = PASSAGE_CONSTANT_TOKENS + T + vectors + n + query
        return [Pass(pairs, length, length, logits=query + 1, scored=query)]

    def plan_sizes(self, seq: int, options: dict[str, Any]) -> Sizes:
        """``seq`` is the passage length (``max_passage_tokens``), the prompt's length the virtual tokens."""
        return Sizes(seq=self.config.max_passage_tokens, virtual_tokens=int(self.prompt_embeddings().shape[0]),
                     negatives=options.get("max_hard_negatives", 4))

    # -- entry points ----------------------------------------------------------------------------
    def encode_pairs(self, queries: list[str], passages: list[str], pair_query, pair_passage) -> PairBatch:
        """Tokenize texts once each and pair them by index, on the model's device."""
        q = tokenize(self.frozen.tokenizer, queries, prefix=self.layout.query_prefix,
                     max_tokens=self.layout.max_query_tokens)
        p = tokenize(self.frozen.tokenizer, passages, prefix="", max_tokens=self.layout.max_passage_tokens)
        return PairBatch.build(q, p, pair_query, pair_passage, self.frozen.device)

    def forward(self, batch: PairBatch) -> Scores:
        """Differentiable query log-likelihoods of every pair in ``batch``: the one scoring entry point, used
        by the training loss, evaluation and the ``rerank`` op (``scoring.score_pairs`` calls it)."""
        return pair_log_likelihood(self.frozen, self, batch)


def adaptive_mean_pool(x: torch.Tensor, lengths: torch.Tensor, m: int) -> torch.Tensor:
    """Mean of ``m`` contiguous chunks of each row's first ``lengths`` positions: ``(U, L, H) -> (U, m, H)``.

    Chunk ``j`` of a row of length ``l`` covers ``[floor(j*l/m), ceil((j+1)*l/m))`` (torch's adaptive
    pooling rule), so every chunk is non-empty when ``l >= 1`` and padding is never read.
    """
    U, L, _ = x.shape
    j = torch.arange(m, device=x.device)  # (m,)
    l = lengths.to(x.device).unsqueeze(1)  # (U, 1)
    start = torch.div(j * l, m, rounding_mode="floor")  # (U, m)
    end = torch.div((j + 1) * l + m - 1, m, rounding_mode="floor")  # (U, m)
    t = torch.arange(L, device=x.device)  # (L,)
    weights = ((t >= start.unsqueeze(-1)) & (t < end.unsqueeze(-1))).to(x.dtype)  # (U, m, L)
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1)  # (U, m, L)
    return weights @ x  # (U, m, H)


METHOD = PassageTuning
