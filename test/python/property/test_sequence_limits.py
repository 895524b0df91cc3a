"""Sequence length against the model's position table, as documented (training.max_length, lm_batching,
methods/injection.check_positions):

- rows are truncated to ``max_length`` tokens: decoder-only rows keep the start of the target and drop
  input tokens from the left; encoder–decoder inputs and targets are each cut on the right (a property
  over random lengths, checked token for token with the byte tokenizer of the tiny models);
- what still does not fit the position table (virtual tokens and new tokens included) is refused with
  a TooLargeError naming both numbers, on both sides of an encoder–decoder with a learned table (BART),
  in training and in generation; T5's relative positions have no table and no limit.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softprompt_worker.errors import InvalidArgumentError, TooLargeError
from softprompt_worker.inference.generation import GenerationOptions, generate
from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt_worker.models import ModelSpec, load_frozen_model
from softprompt_worker.tasks.lm_batching import IGNORE, LMEncoder
from softprompt_worker.models.tiny import BOS, EOS

SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None)
POSITIONS = 256  # every tiny model with a table (tiny.py)
V = 4  # virtual tokens


@pytest.fixture(scope="module")
def models():
    cache: dict = {}

    def get(family: str):
        if family not in cache:
            frozen = load_frozen_model(ModelSpec(tiny=family, device="cpu"))
            cache[family] = frozen, PromptTuning(PromptTuningConfig(num_virtual_tokens=V, init="random"), frozen)
        return cache[family]
    return get


def _ids(frozen, *tokens: str) -> list[int]:
    return [frozen.tokenizer.convert_tokens_to_ids(t) for t in tokens]


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 40), st.integers(2, 60))
def test_decoder_only_rows_keep_the_target_start_and_the_input_end(models, n_in, n_target, max_length):
    frozen, _ = models("gpt2")
    source, target = bytes(range(65, 65 + n_in)).decode(), "t" * n_target
    ids, labels = LMEncoder(frozen, max_length).pair(source, target)
    answer = list(target.encode()) + _ids(frozen, EOS)
    kept_answer = answer[: max_length - 1]
    kept_input = list(source.encode())[-(max_length - len(kept_answer)):]
    assert len(ids) == len(labels) == min(n_in + n_target + 1, max_length)
    assert ids == kept_input + kept_answer
    assert labels == [IGNORE] * len(kept_input) + kept_answer


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 60), st.sampled_from(["bart", "t5"]))
def test_encoder_decoder_rows_are_cut_on_the_right(models, n_in, n_target, max_length, family):
    frozen, _ = models(family)
    wrap = (lambda b: _ids(frozen, BOS) + b + _ids(frozen, EOS)) if family == "bart" else (lambda b: b + _ids(frozen, EOS))
    ids, labels = LMEncoder(frozen, max_length).pair("s" * n_in, "t" * n_target)
    assert ids == wrap(list(b"s" * n_in))[:max_length]
    assert labels == wrap(list(b"t" * n_target))[:max_length]


def test_a_decoder_only_row_needs_two_tokens(models):
    frozen, _ = models("gpt2")
    with pytest.raises(InvalidArgumentError, match=r"training.max_length: .* at least 2 .* got 1"):
        LMEncoder(frozen, 1)


# Input lengths (bytes) at the edge of the table with V virtual tokens and a 1-byte target:
# gpt2/llama: input + target + EOS + V; bart encoder: BOS + input + EOS + V.
@pytest.mark.parametrize("family, fits", [("gpt2", POSITIONS - V - 2), ("llama", POSITIONS - V - 2),
                                          ("bart", POSITIONS - V - 2)])
def test_training_rows_past_the_table_are_refused_with_both_numbers(models, family, fits):
    frozen, method = models(family)
    encoder = LMEncoder(frozen, 4 * POSITIONS)  # max_length above the table: the table is the limit
    assert encoder.collate([encoder.pair("x" * fits, "y")]).forward(method).loss.isfinite()
    with pytest.raises(TooLargeError, match=rf"needs {POSITIONS + 1} positions .* the model has {POSITIONS}"):
        encoder.collate([encoder.pair("x" * (fits + 1), "y")]).forward(method)


def test_a_bart_target_past_the_table_is_refused(models):
    frozen, method = models("bart")
    encoder = LMEncoder(frozen, 4 * POSITIONS)
    with pytest.raises(TooLargeError, match=rf"decoder sequence needs {POSITIONS + 1} positions .* has {POSITIONS}"):
        encoder.collate([encoder.pair("x", "y" * (POSITIONS - 1))]).forward(method)  # BOS + 255 + EOS


def test_t5_has_no_position_table(models):
    frozen, method = models("t5")
    encoder = LMEncoder(frozen, 4 * POSITIONS)
    assert encoder.collate([encoder.pair("x" * 2 * POSITIONS, "y")]).forward(method).loss.isfinite()


@pytest.mark.parametrize("family, text, new_tokens, need", [
    ("gpt2", "x" * 200, 60, 200 + V + 60),  # decoder-only: input, virtual and new tokens share the table
    ("bart", "x" * 260, 1, 2 + 260 + V),  # encoder input
    ("bart", "x", POSITIONS + 1, POSITIONS + 1),  # decoder: one position per new token
])
def test_generation_past_the_table_is_refused_before_running(models, family, text, new_tokens, need):
    frozen, method = models(family)
    with pytest.raises(TooLargeError, match=rf"needs {need} positions .* has {POSITIONS}"):
        generate(frozen, [method.injection()], [text], GenerationOptions(max_new_tokens=new_tokens))
