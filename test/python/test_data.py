"""Data loading: JSONL with bad-row policy, chunked datasets, deterministic split, spec validation."""

from __future__ import annotations

import json

import pytest

from softprompt_worker.data import DatasetStore, load_jsonl, resolve_data, split_rows
from softprompt_worker.errors import InvalidArgumentError, NotFoundError
from softprompt_worker.tasks.base import require_str


def validate(row):
    require_str(row, "input")
    require_str(row, "target")


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = json.dumps({"input": "a", "target": "b"})


def test_bad_row_fails_with_file_and_line(tmp_path):
    path = _write(tmp_path / "d.jsonl", [GOOD, "", GOOD, json.dumps({"input": "a", "target": 3})])
    with pytest.raises(InvalidArgumentError, match=r"d.jsonl:4: target: expected a string, got int"):
        load_jsonl(path, validate)


def test_skip_policy_reports_every_skipped_line(tmp_path):
    path = _write(tmp_path / "d.jsonl", [GOOD, "{not json", json.dumps([1]), json.dumps({"input": "x"}), GOOD])
    train, eval_rows, report = resolve_data({"train": {"path": str(path)}, "on_bad_row": "skip"}, validate,
                                            store=None, seed=0)
    assert len(train) == 2 and eval_rows == []
    info = report.to_dict()
    assert info["skipped"] == 3 and info["train_rows"] == 2
    assert [r["where"].rsplit(":", 1)[1] for r in info["skipped_rows"]] == ["2", "3", "4"]
    assert "not valid JSON" in info["skipped_rows"][0]["error"]
    assert "expected a JSON object" in info["skipped_rows"][1]["error"]
    assert "target: missing" in info["skipped_rows"][2]["error"]


def test_missing_file():
    with pytest.raises(NotFoundError, match="no file"):
        load_jsonl("/nonexistent/x.jsonl", validate)


def test_split_is_deterministic_disjoint_and_complete():
    rows = [{"input": str(i), "target": "t"} for i in range(50)]
    train_a, eval_a = split_rows(rows, 0.2, seed=3)
    train_b, eval_b = split_rows(rows, 0.2, seed=3)
    assert (train_a, eval_a) == (train_b, eval_b) and len(eval_a) == 10
    assert sorted(r["input"] for r in train_a + eval_a) == sorted(r["input"] for r in rows)
    assert split_rows(rows, 0.2, seed=4)[1] != eval_a


def test_chunked_dataset_round_trip():
    store = DatasetStore()
    ds = store.open()
    assert store.append(ds, [{"input": "a", "target": "b"}] * 3) == 3
    assert store.append(ds, [{"input": "c", "target": 1}]) == 4
    with pytest.raises(InvalidArgumentError, match=r"dataset ds-1\[3\]: target"):
        resolve_data({"train": {"dataset": ds}}, validate, store=store, seed=0)
    train, eval_rows, report = resolve_data({"train": {"dataset": ds}, "on_bad_row": "skip", "eval_fraction": 0.34},
                                            validate, store=store, seed=0)
    assert len(train) == 2 and len(eval_rows) == 1 and report.skipped == 1
    assert store.open("mine") == "mine"
    with pytest.raises(InvalidArgumentError, match="already open"):
        store.open("mine")
    assert store.close(ds) and not store.close(ds)
    with pytest.raises(NotFoundError, match="data.train.dataset: no open dataset"):
        resolve_data({"train": {"dataset": ds}}, validate, store=store, seed=0)


@pytest.mark.parametrize("spec, message", [
    ({}, "data.train: missing"),
    ({"train": {"rows": []}}, "data.train: no usable training rows"),
    ({"train": {"path": "a", "rows": []}}, "data.train: expected exactly one of"),
    ({"train": {"rows": [{"input": "a", "target": "b"}]}, "on_bad_row": "drop"}, "data.on_bad_row"),
    ({"train": {"rows": [{"input": "a", "target": "b"}]}, "eval_fraction": 1.0}, "data.eval_fraction"),
    ({"train": {"rows": []}, "eval": {"rows": []}, "eval_fraction": 0.1}, "not both"),
    ({"train": {"rows": []}, "extra": 1}, r"data: unknown field\(s\) \['extra'\]"),
])
def test_spec_errors_name_the_field(spec, message):
    with pytest.raises(InvalidArgumentError, match=message):
        resolve_data(spec, validate, store=DatasetStore(), seed=0)


def test_explicit_eval_and_relative_paths(tmp_path):
    _write(tmp_path / "train.jsonl", [GOOD] * 4)
    train, eval_rows, _ = resolve_data({"train": {"path": "train.jsonl"},
                                        "eval": {"rows": [{"input": "e", "target": "f"}]}},
                                       validate, store=None, seed=0, base_dir=tmp_path)
    assert len(train) == 4 and eval_rows == [{"input": "e", "target": "f"}]
