"""Generation and classification with soft prompts: mixed batches == one row at a time, the KV-cache
loop == full recomputation, streaming, stop strings, sampling seeds, cancellation."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import CancelledError, InvalidArgumentError, TooLargeError
from softprompt_worker.inference.generation import GenerationOptions, classify, generate
from softprompt_worker.methods.injection import run_lm
from softprompt_worker.methods.prefix_tuning import PrefixTuning, PrefixTuningConfig
from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt_worker.models import ModelSpec, load_frozen_model

torch.set_num_threads(1)
# Larger init scales than the default make random tiny models emit varied, non-special tokens.
RESPONSIVE = {"gpt2": {"initializer_range": 0.2}, "llama": {"initializer_range": 0.2},
              "t5": {"initializer_factor": 3.0}, "bart": {"init_std": 0.2}}
INPUTS = ["hello there", "x", "a medium length input", "q?"]


@pytest.fixture(scope="module", params=list(RESPONSIVE))
def setup(request):
    frozen = load_frozen_model(ModelSpec(tiny=request.param, overrides=RESPONSIVE[request.param]))
    short = PromptTuning(PromptTuningConfig(num_virtual_tokens=3, init="random", seed=1), frozen)
    long = PromptTuning(PromptTuningConfig(num_virtual_tokens=7, init="random", seed=2), frozen)
    prefix = PrefixTuning(PrefixTuningConfig(num_virtual_tokens=5, prefix_projection=True), frozen)
    with torch.no_grad():
        rows = [short.injection(), prefix.injection(), None, long.injection()]
    return frozen, rows


def _reference_greedy(frozen, injection, text, n):
    """Greedy decoding by recomputing the whole sequence every step (no cache)."""
    tok = frozen.tokenizer
    ids = tok(text, return_tensors="pt")["input_ids"]  # (1, L)
    out: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            if frozen.is_encoder_decoder:
                dec = torch.tensor([[frozen.config.decoder_start_token_id] + out])
                logits = run_lm(frozen, [injection], ids, torch.ones_like(ids), decoder_input_ids=dec).logits
            else:
                full = torch.tensor([ids[0].tolist() + out])
                logits = run_lm(frozen, [injection], full, torch.ones_like(full)).logits
            token = int(logits[0, -1].argmax())
            if token == tok.eos_token_id:
                break
            out.append(token)
    return tok.decode(out, skip_special_tokens=True)


def test_mixed_batch_equals_each_row_alone(setup):
    frozen, rows = setup
    for options in (GenerationOptions(max_new_tokens=8),
                    GenerationOptions(max_new_tokens=8, do_sample=True, temperature=0.8, top_p=0.9, seed=7)):
        batched = generate(frozen, rows, INPUTS, options)
        alone = [generate(frozen, [row], [text], options)[0] for row, text in zip(rows, INPUTS)]
        assert batched == alone
        assert any(batched), "random tiny model produced only special tokens: the check would be empty"


def test_cached_loop_equals_recomputation(setup):
    frozen, rows = setup
    got = generate(frozen, rows, INPUTS, GenerationOptions(max_new_tokens=6))
    want = [_reference_greedy(frozen, row, text, 6) for row, text in zip(rows, INPUTS)]
    assert got == want


def test_prompt_changes_output_and_seed_matters(setup):
    frozen, rows = setup
    plain = generate(frozen, [None] * 4, INPUTS, GenerationOptions(max_new_tokens=8))
    prompted = generate(frozen, [rows[0]] * 4, INPUTS, GenerationOptions(max_new_tokens=8))
    assert plain != prompted
    a = generate(frozen, [None], ["abc"], GenerationOptions(max_new_tokens=12, do_sample=True, temperature=3.0, seed=1))
    b = generate(frozen, [None], ["abc"], GenerationOptions(max_new_tokens=12, do_sample=True, temperature=3.0, seed=2))
    assert a != b


def test_unprompted_equals_transformers_generate():
    frozen = load_frozen_model(ModelSpec(tiny="gpt2", overrides=RESPONSIVE["gpt2"]))
    ids = frozen.tokenizer("hello", return_tensors="pt")["input_ids"]
    ref = frozen.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False,
                                pad_token_id=frozen.tokenizer.pad_token_id)
    want = frozen.tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=True)
    assert generate(frozen, [None], ["hello"], GenerationOptions(max_new_tokens=10)) == [want]


def test_streaming_and_stop_strings(setup):
    frozen, rows = setup
    full = generate(frozen, rows, INPUTS, GenerationOptions(max_new_tokens=10))
    row = max(range(4), key=lambda i: len(full[i]))
    stop = full[row][3:5]  # a stop string that occurs in this row's output
    events: list[tuple[int, str]] = []
    cut = generate(frozen, rows, INPUTS, GenerationOptions(max_new_tokens=10, stop=[stop]),
                   on_delta=lambda r, text, ids: events.append((r, text)))
    assert cut[row] == full[row][: full[row].find(stop)]
    for i in range(4):
        assert "".join(t for r, t in events if r == i) == cut[i]  # the stream adds up to the output
        assert stop not in cut[i]


def test_cancel_and_options():
    frozen = load_frozen_model(ModelSpec(tiny="gpt2"))
    with pytest.raises(CancelledError):
        generate(frozen, [None], ["a"], GenerationOptions(max_new_tokens=5), cancelled=lambda: True)
    with pytest.raises(InvalidArgumentError, match="top_p"):
        generate(frozen, [None], ["a"], GenerationOptions(top_p=0))
    with pytest.raises(InvalidArgumentError, match="max_new_tokens"):
        generate(frozen, [None], ["a"], GenerationOptions(max_new_tokens=0))
    with pytest.raises(TooLargeError, match="256"):  # tiny gpt2 has 256 positions
        generate(frozen, [None], ["a" * 200], GenerationOptions(max_new_tokens=100))


def test_classify_mixed_equals_alone(setup):
    frozen, rows = setup
    labels = ["yes", "no", "maybe"]
    best, scores = classify(frozen, rows, INPUTS, labels, batch_size=3)
    for i, (row, text) in enumerate(zip(rows, INPUTS)):
        _, alone = classify(frozen, [row], [text], labels)
        torch.testing.assert_close(torch.tensor(scores[i]), torch.tensor(alone[0]), atol=1e-4, rtol=1e-5)
        assert best[i] == max(range(3), key=scores[i].__getitem__)
    assert all(s < 0 for row in scores for s in row)  # summed log-probabilities
