"""The one init rule (methods/init_vectors.py) that prompt, suffix and passage tuning share."""

from __future__ import annotations

import pytest
import torch

from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.methods.init_vectors import VOCAB_SAMPLE_SIZE, embedding_std, initial_vectors
from softprompt_worker.methods.passage_tuning import PassageTuning, PassageTuningConfig
from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from softprompt_worker.methods.suffix_tuning import SuffixTuning, SuffixTuningConfig
from softprompt_worker.models import ModelSpec, load_frozen_model


@pytest.fixture(scope="module")
def scaled():
    """BART with scaled embeddings: the module multiplies the table's rows by sqrt(d_model)."""
    return load_frozen_model(ModelSpec(tiny="bart", overrides={"scale_embedding": True}))


def test_vectors_come_through_the_embedding_module_with_its_scaling(scaled):
    ids = torch.randint(0, min(VOCAB_SAMPLE_SIZE, len(scaled.tokenizer)), (6,), generator=torch.Generator().manual_seed(4))
    got = initial_vectors(scaled, 6, "vocab", generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = scaled.input_embeddings()(ids)  # (6, hidden), scaled
        raw = scaled.input_embeddings().weight[ids]
    assert torch.equal(got, expected) and not torch.allclose(got, raw)
    text = initial_vectors(scaled, 5, "text", "ab")  # "ab" is 2 byte tokens, repeated to 5: a b a b a
    torch.testing.assert_close(text[0], text[2]) and torch.testing.assert_close(text[1], text[3])
    with pytest.raises(InvalidArgumentError, match="init_text: '' tokenises to nothing"):
        initial_vectors(scaled, 2, "text", "")


def test_every_method_draws_from_the_cpu_generator_so_a_seed_means_the_same_prompt_everywhere():
    frozen = load_frozen_model(ModelSpec(tiny="llama"))
    builders = {
        "prompt": lambda: PromptTuning(PromptTuningConfig(num_virtual_tokens=4, seed=7), frozen).embedding,
        "suffix": lambda: SuffixTuning(SuffixTuningConfig(num_virtual_tokens=4), frozen).suffix,
        "passage": lambda: PassageTuning(PassageTuningConfig(num_virtual_tokens=4, init="vocab"),
                                         frozen).prompt,
    }
    for name, build in builders.items():
        torch.manual_seed(11)
        first = build().detach().clone()
        torch.manual_seed(11)
        assert torch.equal(build(), first), name
    # Suffix and passage draw the same ids from the same (global CPU) seed: one rule, not three.
    torch.manual_seed(3)
    suffix = builders["suffix"]().detach()
    torch.manual_seed(3)
    assert torch.equal(builders["passage"]().detach(), suffix)


@pytest.mark.parametrize("rows", [1, 7, 10_000])
def test_embedding_std_in_chunks_equals_the_whole_table_std(rows):
    weight = torch.randn(50, 12, dtype=torch.bfloat16) * 3 + 1
    torch.testing.assert_close(embedding_std(weight, rows), weight.float().std(), rtol=1e-5, atol=1e-6)
