"""The train, data_* and checkpoint_inspect ops, called as the worker calls them."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from softprompt_worker.errors import CheckpointInvalidError, InvalidArgumentError
from softprompt_worker.fields import build, to_body
from softprompt_worker.ops import load_op_modules
from softprompt_worker.ops.train_bodies import TrainReply
from softprompt_worker.ops.train_events import EVENTS
from softprompt_worker.serving.handlers import OpContext, Request, WorkerState, get_op

torch.set_num_threads(1)
assert not load_op_modules(["softprompt_worker.ops.data", "softprompt_worker.ops.train",
                            "softprompt_worker.ops.checkpoints"])

ROWS = [{"input": f"{w}=", "target": w[::-1]} for w in ("abc", "hello", "xy", "kite", "moon", "stone", "sun", "tea")]
EVAL = [{"input": f"{w}=", "target": w} for w in ("abc", "moon", "tea")]  # held out: the identity, not the reversal


def call(state, name, body, *, cancel_after=None):
    events = []
    cancel = threading.Event()

    def emit(_id, _op, event, _tensors):
        events.append(event)
        if cancel_after is not None and event.get("event") == "step" and event["step"] >= cancel_after:
            cancel.set()

    ctx = OpContext(1, name, state, emit, cancel)
    reply = get_op(name).handler(Request(1, name, body), ctx)
    return reply.body, events


def job(tmp_path, **over):
    body = {"model": {"tiny": "gpt2", "device": "cpu"}, "method": "prompt_tuning",
            "method_config": {"num_virtual_tokens": 4}, "task": "generation",
            "data": {"train": {"rows": ROWS}, "eval_fraction": 0.25},
            "training": {"steps": 4, "batch_size": 3, "log_every": 2, "checkpoint_every": 2},
            "run_dir": str(tmp_path / "run")}
    body.update(over)
    return body


def test_train_streams_events_writes_the_run_dir_and_inspects(tmp_path):
    state = WorkerState()
    reply, events = call(state, "train", job(tmp_path))
    assert reply["status"] == "completed" and reply["summary"]["steps"] == 4
    kinds = [e["event"] for e in events]
    assert [k for k in kinds if k != "best"] == ["data", "started", "eval", "step", "checkpoint", "step", "eval",
                                                 "checkpoint", "selection", "done"]
    assert kinds[3] == "best"  # the untuned prompt is the first candidate (training.select_by)
    assert events[0]["train_rows"] == 6 and events[0]["eval_rows"] == 2
    run = tmp_path / "run"
    assert reply["checkpoint"] == str(run / "checkpoints" / "step-00000004.pb")
    assert json.loads((run / "job.json").read_text())["method"] == "prompt_tuning"
    logged = [json.loads(line)["event"] for line in (run / "events.jsonl").read_text().splitlines()]
    assert logged == kinds
    info, _ = call(state, "checkpoint_inspect", {"path": reply["checkpoint"], "model": {"tiny": "gpt2", "device": "cpu"}})
    assert info["method"] == "prompt_tuning" and info["step"] == 4 and info["resumable"] and info["compatible"]
    assert info["tensors"] == {"embedding": {"dtype": "float32", "shape": [4, 64]}}
    other, _ = call(state, "checkpoint_inspect", {"path": reply["checkpoint"], "model": {"tiny": "llama", "device": "cpu"}})
    assert other["compatible"] is False


def test_every_event_and_the_reply_are_as_declared(tmp_path):
    """What the op streams and replies is, key for key, what ops/train_events.py and ops/train_bodies.py
    declare: the SDK decodes them with the schemas generated from those classes."""
    reply, events = call(WorkerState(), "train", job(tmp_path, data={"train": {"rows": ROWS + [{"input": "x"}]},
                                                                    "eval": {"rows": EVAL}, "on_bad_row": "skip"}))
    assert {e["event"] for e in events} == set(EVENTS) - {"queued"}  # queued: test_scheduler.py
    for event in events:
        assert to_body(build(EVENTS[event["event"]], event)) == event
    assert events[0]["skipped_rows"] and to_body(build(TrainReply, reply)) == reply


def test_cancel_ends_with_a_resumable_checkpoint_and_resume_continues(tmp_path):
    state = WorkerState()
    body = job(tmp_path, training={"steps": 6, "batch_size": 3, "log_every": 1})
    reply, _ = call(state, "train", body, cancel_after=2)
    assert reply["status"] == "cancelled" and reply["summary"]["steps"] == 2
    resumed, events = call(state, "train", {**body, "resume_from": reply["checkpoint"], "run_dir": str(tmp_path / "r2")})
    assert resumed["status"] == "completed" and events[1]["start_step"] == 2 and resumed["summary"]["steps"] == 6


def test_data_ops_feed_train(tmp_path):
    state = WorkerState()
    opened, _ = call(state, "data_open", {})
    ds = opened["dataset"]
    assert call(state, "data_append", {"dataset": ds, "rows": ROWS[:5]})[0] == {"count": 5}
    assert call(state, "data_append", {"dataset": ds, "rows": ROWS[5:]})[0] == {"count": 8}
    reply, events = call(state, "train", job(tmp_path, data={"train": {"dataset": ds}},
                                             training={"steps": 1, "batch_size": 4}))
    assert reply["status"] == "completed" and events[0]["train_rows"] == 8
    assert call(state, "data_close", {"dataset": ds})[0] == {"closed": True}


@pytest.mark.parametrize("over, error, message", [
    ({"training": {"lr": -1}}, InvalidArgumentError, "training.lr: must be > 0, got -1"),
    ({"task": "translation"}, InvalidArgumentError, "task: 'translation' is not one of"),
    ({"method": "suffix_tuning"}, InvalidArgumentError, "does not train method 'suffix_tuning'"),
    ({"data": {"train": {"rows": [{"input": "a"}]}}}, InvalidArgumentError, r"data.train.rows\[0\]: target: missing"),
    ({"method_config": {"num_virtual_tokens": 0}}, InvalidArgumentError, "num_virtual_tokens"),
    ({"bogus": 1}, InvalidArgumentError, r"unknown field\(s\) \['bogus'\]"),
])
def test_bad_jobs_fail_naming_the_field(tmp_path, over, error, message):
    with pytest.raises(error, match=message):
        call(WorkerState(), "train", job(tmp_path, **over))


def test_resume_from_a_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"junk")
    with pytest.raises(CheckpointInvalidError):
        call(WorkerState(), "train", job(tmp_path, resume_from=str(bad)))


def test_keep_last_deletes_this_jobs_older_checkpoints(tmp_path):
    body = job(tmp_path, training={"steps": 6, "batch_size": 3, "log_every": 2, "checkpoint_every": 1,
                                   "eval_baseline": False, "keep_last": 2})
    reply, events = call(WorkerState(), "train", body)
    written = [e["path"] for e in events if e["event"] == "checkpoint"]
    assert len(written) == 6  # every step wrote one...
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pb"))
    assert kept == ["best.pb", "step-00000005.pb", "step-00000006.pb"]  # ...only the newest two remain (and best)
    assert reply["checkpoint"].endswith("step-00000006.pb")


def test_keep_last_must_be_a_count(tmp_path):
    with pytest.raises(InvalidArgumentError, match="training.keep_last"):
        call(WorkerState(), "train", job(tmp_path, training={"steps": 2, "keep_last": -1}))


def test_report_to_tensorboard_writes_scalars_under_the_run_dir(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is a dev dependency")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    body = job(tmp_path, training={"steps": 4, "batch_size": 3, "log_every": 2, "report_to": ["tensorboard"]})
    reply, events = call(WorkerState(), "train", body)
    assert reply["status"] == "completed"
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "eval/loss"} <= tags
    assert [s.step for s in acc.Scalars("train/loss")] == [e["step"] for e in events if e["event"] == "step"]
    evals = [e for e in events if e["event"] == "eval"]
    assert [(s.step, round(s.value, 4)) for s in acc.Scalars("eval/loss")] == [
        (e["step"], round(e["metrics"]["loss"], 4)) for e in evals]  # step 0: the untuned prompt


def test_report_to_names_known_trackers(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"training.report_to\[0\]: 'wandb' is not one of tensorboard"):
        call(WorkerState(), "train", job(tmp_path, training={"steps": 2, "report_to": ["wandb"]}))


def test_the_best_checkpoint_holds_the_prompt_that_scored_best(tmp_path):
    """On a real model through the op: best.pb, loaded on its own, re-evaluates to the metrics the job
    reported for it, and its step is the best of the evaluations the job streamed."""
    from softprompt_worker.training.checkpoints import build_method_from_checkpoint, load_checkpoint
    from softprompt_worker.models import ModelSpec, load_frozen_model
    from softprompt_worker.tasks.generation import GenerationTask

    model = {"tiny": "gpt2", "device": "cpu", "overrides": {"initializer_range": 0.1}}
    body = job(tmp_path, model=model, data={"train": {"rows": ROWS}, "eval": {"rows": EVAL}},
               training={"steps": 24, "batch_size": 4, "lr": 0.3, "eval_every": 3, "log_every": 3})
    reply, events = call(WorkerState(), "train", body)
    evals = {e["step"]: e["metrics"]["loss"] for e in events if e["event"] == "eval"}
    best = reply["best"]
    assert best["step"] == min(evals, key=evals.get) and best["value"] == min(evals.values()) and best["step"] > 0
    assert best["checkpoint"] == str(tmp_path / "run" / "checkpoints" / "best.pb")
    record = load_checkpoint(best["checkpoint"])
    assert record.step == best["step"] and record.training_state is None  # to load, not to resume
    frozen = load_frozen_model(ModelSpec.from_dict(model))
    method = build_method_from_checkpoint(record, frozen)
    again = GenerationTask(method, {"max_length": 512}, ROWS, EVAL).evaluate()
    assert again["loss"] == pytest.approx(best["metrics"]["loss"], rel=1e-5)
    selection = next(e for e in events if e["event"] == "selection")
    assert selection["by"] == "loss" and selection["beat_baseline"] is True


def test_a_job_that_makes_the_held_out_metric_worse_hands_back_the_untuned_prompt(tmp_path):
    """Training teaches "yes" while the eval split wants "no": held-out accuracy falls from 1.0 (measured:
    1.0 -> 0.17 after 3 steps). The job says so, and best.pb is the untuned prompt, which still scores 1.0."""
    from softprompt_worker.training.checkpoints import build_method_from_checkpoint, load_checkpoint
    from softprompt_worker.models import ModelSpec, load_frozen_model
    from softprompt_worker.tasks.classification import ClassificationTask

    model = {"tiny": "gpt2", "device": "cpu", "overrides": {"initializer_range": 0.1}}
    words = ["apple", "banana", "cat", "dog", "egg", "fig", "grape", "hat", "ink", "jam", "kite", "lamp"]
    train_rows, eval_rows = [{"input": w, "label": "yes"} for w in words], [{"input": w, "label": "no"} for w in words[:6]]
    options = {"labels": ["yes", "no"]}
    body = job(tmp_path, model=model, task="classification", task_options=options,
               data={"train": {"rows": train_rows}, "eval": {"rows": eval_rows}},
               training={"steps": 6, "batch_size": 4, "lr": 0.3, "eval_every": 3, "log_every": 3})
    reply, events = call(WorkerState(), "train", body)
    selection = next(e for e in events if e["event"] == "selection")
    assert selection["by"] == "accuracy" and selection["beat_baseline"] is False, selection
    assert "no step beat the untuned prompt" in selection["message"]
    assert reply["best"]["step"] == 0 and reply["summary"]["metrics"]["accuracy"] < reply["best"]["value"]
    method = build_method_from_checkpoint(load_checkpoint(reply["best"]["checkpoint"]),
                                          load_frozen_model(ModelSpec.from_dict(model)))
    again = ClassificationTask(method, {**options, "loss": "lm", "max_length": 512}, train_rows, eval_rows).evaluate()
    assert again["accuracy"] == reply["best"]["value"] == reply["summary"]["baseline_metrics"]["accuracy"]


def test_a_resumed_job_adopts_a_better_best_found_after_its_checkpoint(tmp_path):
    """A worker that died after saving a new best.pb but before its next checkpoint: the resumed job's
    best is what best.pb holds (its step and metrics describe the prompt in it), not the older record."""
    from softprompt_worker.training.checkpoints import load_checkpoint, save_checkpoint
    from softprompt_worker.methods.registry import method_class
    from softprompt_worker.models import ModelSpec, load_frozen_model

    body = job(tmp_path, training={"steps": 4, "batch_size": 3, "log_every": 2, "checkpoint_every": 2, "eval_every": 2})
    first, _ = call(WorkerState(), "train", body)
    run = tmp_path / "run"
    step2 = str(run / "checkpoints" / "step-00000002.pb")
    recorded = load_checkpoint(step2).training_state.meta["selection"]["best"]
    cls = method_class("prompt_tuning")
    stand_in = cls(cls.config_class.from_dict({"num_virtual_tokens": 4}),
                   load_frozen_model(ModelSpec(tiny="gpt2", device="cpu")))
    save_checkpoint(run / "checkpoints" / "best.pb", stand_in, step=3, metrics={"loss": 0.001})  # the crashed run's
    resumed, _ = call(WorkerState(), "train", {**body, "resume_from": step2})
    assert resumed["best"]["step"] == 3 and resumed["best"]["value"] == 0.001, (recorded, resumed["best"])
    assert recorded["step"] != 3 and first["best"]["value"] > 0.001


def test_resuming_a_passage_checkpoint_that_spells_init_the_old_way(tmp_path):
    """A checkpoint written before ``prompt_init`` became ``init`` resumes, and a ``method_config`` in either
    spelling is compared with it as a parsed config, not as a dict of names."""
    from softprompt_worker.training.checkpoints import build_method_from_checkpoint, load_checkpoint, save_checkpoint

    rows = [{"query": f"q {w}", "positive": f"doc {w}", "negatives": ["other"]} for w in ("a", "b", "c", "d")]
    config = {"num_virtual_tokens": 3, "init": "vocab", "passage_vectors": "none"}
    body = {"model": {"tiny": "llama", "device": "cpu"}, "method": "passage_tuning", "method_config": config,
            "task": "reranking", "data": {"train": {"rows": rows}}, "training": {"steps": 1, "batch_size": 2},
            "run_dir": str(tmp_path / "run")}
    state = WorkerState()
    done, _ = call(state, "train", body)
    record = load_checkpoint(done["checkpoint"])
    frozen = state.cache[next(k for k in state.cache if k[0] == "frozen_model")]
    method = build_method_from_checkpoint(record, frozen)
    old = method.config.to_dict()
    old["prompt_init"], old["prompt_init_text"] = old.pop("init"), old.pop("init_text")
    method.config.to_json = lambda: json.dumps(old, sort_keys=True)  # written as before the rename
    path = save_checkpoint(tmp_path / "old.pb", method, step=record.step, training_state=record.training_state)
    assert "prompt_init" in load_checkpoint(path).method_config
    old_spelling = {"num_virtual_tokens": 3, "prompt_init": "vocab", "passage_vectors": "none"}
    for given in (config, old_spelling):
        resumed, _ = call(state, "train", {**body, "method_config": given, "resume_from": str(path),
                                           "training": {"steps": 2, "batch_size": 2},
                                           "run_dir": str(tmp_path / f"resumed-{len(given)}-{given.get('init')}")})
        assert resumed["status"] == "completed"
    with pytest.raises(InvalidArgumentError, match="differs from the checkpoint"):
        call(state, "train", {**body, "method_config": {**config, "num_virtual_tokens": 4}, "resume_from": str(path),
                              "run_dir": str(tmp_path / "refused")})
