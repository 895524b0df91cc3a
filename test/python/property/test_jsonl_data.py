"""Property tests of JSONL training data (data.py): random mixes of good rows and bad lines.

Every line is generated together with what it is (good row, blank, or bad with a known reason), so the
expectation comes from the generator, never from the code under test:
- ``on_bad_row="fail"``: the first bad line stops loading with an InvalidArgumentError naming
  ``file:line``; a file with no bad line loads every good row, in order.
- ``on_bad_row="skip"``: every good row is kept, in order, and every bad line is reported with its
  ``file:line`` (none silently dropped, none invented).
Bad lines: invalid JSON, wrong types, missing fields, non-objects, empty strings, NaN constants,
over-deep nesting, lines over ``data.MAX_LINE_BYTES`` (lowered here so the test stays cheap) and
invalid UTF-8.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from softprompt_worker import data as data_module
from softprompt_worker.data import DataReport, load_jsonl, resolve_data, validate_rows
from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.tasks.embedding import EmbeddingTask
from softprompt_worker.tasks.generation import GenerationTask
from softprompt_worker.tasks.reranking import RerankingTask

SETTINGS = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LINE_LIMIT = 8192  # bytes; data.MAX_LINE_BYTES is patched down to this so "huge" lines stay small

validate = GenerationTask.validate_row
text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False))
non_strings = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(text, scalars, max_size=2))


@st.composite
def good_rows(draw) -> dict:
    row = {"input": draw(text), "target": draw(text)}
    for key, value in draw(st.dictionaries(text.filter(lambda k: k not in row), scalars, max_size=2)).items():
        row[key] = value
    keys = draw(st.permutations(list(row)))
    return {k: row[k] for k in keys}


def dump(row, draw) -> bytes:
    body = json.dumps(row, ensure_ascii=draw(st.booleans()), allow_nan=False).encode("utf-8")
    pad = draw(st.sampled_from([b"", b" ", b"\t", b"  "]))
    return pad + body + draw(st.sampled_from([b"", b" ", b"\r", b" \t"]))


@st.composite
def lines(draw) -> tuple[str, bytes]:
    """One line (no b"\\n") and its kind: "good", "blank" or "bad"."""
    kind = draw(st.sampled_from(["good", "good", "good", "blank", "json", "type", "missing", "object", "empty",
                                 "nan", "deep", "huge", "utf8", "bigint"]))
    if kind == "good":
        line = dump(draw(good_rows()), draw)
        assume(len(line) + 1 <= LINE_LIMIT)
        return "good", line
    if kind == "blank":
        return "blank", draw(st.sampled_from([b"", b" ", b"\t", b"\r", b" \t \r"]))
    row = draw(good_rows())
    if kind == "json":
        raw = json.dumps(row).encode()
        cut = draw(st.integers(1, len(raw) - 1))
        broken = draw(st.sampled_from([raw[:cut], raw[:cut] + b",", b"{" + raw, raw + b"}", raw.replace(b":", b"=", 1),
                                      b"{'input': 'a'}", b"not json"]))
        try:
            json.loads(broken)
            assume(False)
        except ValueError:
            pass
        return "bad", broken
    if kind == "type":
        row[draw(st.sampled_from(["input", "target"]))] = draw(non_strings)
    elif kind == "missing":
        del row[draw(st.sampled_from(["input", "target"]))]
    elif kind == "object":
        return "bad", json.dumps(draw(st.one_of(scalars, st.lists(scalars, max_size=3), text))).encode()
    elif kind == "empty":
        row[draw(st.sampled_from(["input", "target"]))] = ""
    elif kind == "bigint":
        return "bad", json.dumps(row)[:-1].encode() + b', "n": 1' + b"0" * 5000 + b"}"
    elif kind == "nan":
        return "bad", json.dumps({**row, "w": float(draw(st.sampled_from(["nan", "inf", "-inf"])))}).encode()
    elif kind == "deep":
        depth = draw(st.integers(1_500, LINE_LIMIT - 1))  # past the recursion limit, under the line limit
        return "bad", b"[" * depth
    elif kind == "huge":
        row["input"] = "x" * draw(st.integers(LINE_LIMIT, 2 * LINE_LIMIT))
        return "bad", json.dumps(row).encode()
    elif kind == "utf8":
        raw = json.dumps(row, ensure_ascii=False).encode()
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82", b"\x80"]))
        at = raw.index(b'"', 2) if draw(st.booleans()) else len(raw) - 2  # inside a key or a value
        return "bad", raw[:at] + junk + raw[at:]
    return "bad", json.dumps(row).encode()


files = st.tuples(st.lists(lines(), min_size=1, max_size=12), st.booleans())


def _write(parts: list[tuple[str, bytes]], trailing_newline: bool) -> Path:
    blob = b"\n".join(line for _, line in parts) + (b"\n" if trailing_newline else b"")
    fd, name = tempfile.mkstemp(suffix=".jsonl")
    with open(fd, "wb") as f:
        f.write(blob)
    return Path(name)


def _expected(parts):
    good = [json.loads(line) for kind, line in parts if kind == "good"]
    bad = [n for n, (kind, _) in enumerate(parts, start=1) if kind == "bad"]
    return good, bad


@pytest.fixture(autouse=True)
def small_line_limit(monkeypatch):
    monkeypatch.setattr(data_module, "MAX_LINE_BYTES", LINE_LIMIT)


@SETTINGS
@given(files)
def test_skip_keeps_every_good_row_and_reports_every_bad_line(case):
    parts, trailing = case
    path = _write(parts, trailing)
    try:
        report = DataReport()
        rows = load_jsonl(path, validate, on_bad_row="skip", report=report)
    finally:
        path.unlink()
    good, bad = _expected(parts)
    assert rows == good
    assert report.skipped == len(bad)
    assert [r["where"] for r in report.skipped_rows] == [f"{path}:{n}" for n in bad]
    assert all(r["error"] for r in report.skipped_rows)


@SETTINGS
@given(files)
def test_fail_names_the_first_bad_line(case):
    parts, trailing = case
    path = _write(parts, trailing)
    good, bad = _expected(parts)
    try:
        if bad:
            with pytest.raises(InvalidArgumentError) as info:
                load_jsonl(path, validate, on_bad_row="fail")
            assert info.value.message.startswith(f"{path}:{bad[0]}: ")
            assert info.value.details["where"] == f"{path}:{bad[0]}"
        else:
            assert load_jsonl(path, validate, on_bad_row="fail") == good
    finally:
        path.unlink()


def test_line_limit_error_names_the_limit(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(json.dumps({"input": "x" * 2 * LINE_LIMIT, "target": "y"}).encode() + b"\n")
    with pytest.raises(InvalidArgumentError, match=rf"big.jsonl:1: line is longer than {LINE_LIMIT} bytes"):
        load_jsonl(path, validate)


def test_a_utf8_bom_is_not_a_bad_row(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"input": "a", "target": "b"}).encode() + b"\n")
    assert load_jsonl(path, validate) == [{"input": "a", "target": "b"}]


# -- rows that arrive as values (datasets sent in chunks, inline rows) ---------------------------------

keys = st.one_of(text, st.binary(max_size=4))
values = st.recursive(st.one_of(scalars, text, st.binary(max_size=4)),
                      lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
                      max_leaves=8)


@SETTINGS
@given(st.lists(values, max_size=12), st.sampled_from([GenerationTask, EmbeddingTask, RerankingTask]))
def test_any_value_rows_are_kept_or_reported(rows, task):
    """Whatever msgpack can carry as a row: validation never crashes, and skip keeps exactly the rows
    that validate on their own, reporting the others by index."""
    ok = []
    for row in rows:
        try:
            task.validate_row(row)
            ok.append(True)
        except InvalidArgumentError as exc:
            assert exc.message
            ok.append(False)
    report = DataReport()
    kept = validate_rows(rows, "ds", task.validate_row, on_bad_row="skip", report=report)
    assert kept == [r for r, good in zip(rows, ok) if good]
    assert [r["where"] for r in report.skipped_rows] == [f"ds[{i}]" for i, good in enumerate(ok) if not good]


@SETTINGS
@given(st.dictionaries(st.sampled_from(["train", "eval", "eval_fraction", "on_bad_row", "extra"]), values, max_size=4))
def test_random_data_specs_fail_with_invalid_argument_naming_data(spec):
    try:
        resolve_data(spec, validate, store=None, seed=0)
    except InvalidArgumentError as exc:
        assert exc.message.startswith("data"), exc.message
