"""Training data: JSONL files, rows sent by the client in chunks, and the train/eval split.

A data spec (the ``data`` field of a ``train`` request) says where rows come from:

    {"train": {"path": "train.jsonl"} | {"dataset": "ds-1"} | {"rows": [...]},
     "eval": <same shapes, optional>, "eval_fraction": 0.1, "on_bad_row": "fail" | "skip"}

Every row is checked by the task's ``validate_row``. A bad row is never dropped silently: with
``on_bad_row="fail"`` (default) the first one stops the job with its file and line (or dataset and row
index); with ``"skip"`` the job goes on and the report lists every skipped line and why.
Without explicit eval data, ``eval_fraction`` of the training rows are held out by a seeded shuffle, so
the same data and seed always give the same split.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from softprompt_worker.errors import InvalidArgumentError, NotFoundError, TooLargeError, WorkerError
from softprompt_worker.fields import check_fields, check_values, option
from softprompt_worker.files import open_regular_file

ON_BAD_ROW = ("fail", "skip")
MAX_REPORTED_SKIPS = 100  # the report keeps the first ones and counts the rest
MAX_DATASET_ROWS = 10_000_000
MAX_LINE_BYTES = 16 << 20  # one JSONL row; a longer line is a bad row (it is never read whole)
_JSON_SPACE = " \t\r\n"  # only JSON's whitespace makes a line blank; anything else must parse

Validate = Callable[[dict], None]


@dataclass
class DataReport:
    """What was loaded: row counts and every skipped row (``where`` is ``file:line`` or ``dataset[i]``)."""

    train_rows: int = 0
    eval_rows: int = 0
    skipped: int = 0
    skipped_rows: list[dict[str, str]] = field(default_factory=list)

    def skip(self, where: str, error: str) -> None:
        self.skipped += 1
        if len(self.skipped_rows) < MAX_REPORTED_SKIPS:
            self.skipped_rows.append({"where": where, "error": error})

    def to_dict(self) -> dict[str, Any]:
        return {"train_rows": self.train_rows, "eval_rows": self.eval_rows, "skipped": self.skipped,
                "skipped_rows": list(self.skipped_rows)}


def load_jsonl(path: str | Path, validate: Validate, *, on_bad_row: str = "fail",
               report: DataReport | None = None) -> list[dict]:
    """Rows of a JSONL file (blank lines ignored), each validated; bad rows fail or are reported.

    Lines are numbered by ``\\n`` as ``wc -l`` counts them; a UTF-8 byte order mark is allowed. A line
    that is not UTF-8, not strict JSON (no NaN/Infinity), nested too deep, or longer than
    ``MAX_LINE_BYTES`` is a bad row like one that fails ``validate``.
    """
    report = report if report is not None else DataReport()
    p = Path(path)
    rows = []
    with open_regular_file(p, what="data") as f:  # a FIFO or device is refused, not read forever
        for number, raw in _numbered_lines(f):
            where = f"{p}:{number}"
            if raw is None:
                _bad(where, f"line is longer than {MAX_LINE_BYTES} bytes (data.MAX_LINE_BYTES)", on_bad_row, report)
                continue
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                _bad(where, f"not valid UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})", on_bad_row,
                     report)
                continue
            if not line.strip(_JSON_SPACE):
                continue
            try:
                row = json.loads(line, parse_constant=_reject_constant)
            except json.JSONDecodeError as exc:
                _bad(where, f"not valid JSON ({exc.msg} at column {exc.colno})", on_bad_row, report)
                continue
            except (ValueError, RecursionError) as exc:  # NaN, over-long integers, too deep nesting
                reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
                _bad(where, f"not valid JSON ({reason})", on_bad_row, report)
                continue
            if _check(row, where, validate, on_bad_row, report):
                rows.append(row)
    return rows


def _numbered_lines(f: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """``(line_number, bytes | None)`` per line of a binary file; None for a line over MAX_LINE_BYTES,
    whose rest is skipped in bounded reads."""
    limit = MAX_LINE_BYTES
    number = 0
    while True:
        raw = f.readline(limit + 2)  # content, maybe "\r", and "\n"
        if not raw:
            return
        number += 1
        if len(raw) > limit and len(raw.rstrip(b"\r\n")) > limit:
            while raw and not raw.endswith(b"\n"):
                raw = f.readline(1 << 20)
            yield number, None
        else:
            yield number, raw


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def validate_rows(rows: list[Any], source: str, validate: Validate, *, on_bad_row: str = "fail",
                  report: DataReport | None = None) -> list[dict]:
    """In-memory rows (a dataset or inline rows), validated like file rows; ``source[i]`` names a row."""
    report = report if report is not None else DataReport()
    return [row for i, row in enumerate(rows) if _check(row, f"{source}[{i}]", validate, on_bad_row, report)]


def _check(row: Any, where: str, validate: Validate, on_bad_row: str, report: DataReport) -> bool:
    try:
        if not isinstance(row, dict):
            raise InvalidArgumentError(f"expected a JSON object, got {type(row).__name__}")
        validate(row)
    except InvalidArgumentError as exc:
        _bad(where, exc.message, on_bad_row, report)
        return False
    return True


def _bad(where: str, error: str, on_bad_row: str, report: DataReport) -> None:
    if on_bad_row == "fail":
        raise InvalidArgumentError(f"{where}: {error} (set data.on_bad_row='skip' to skip bad rows)",
                                   details={"where": where})
    report.skip(where, error)


def split_rows(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic (train, eval) split: a seeded shuffle of the indices, eval = the first share."""
    if not 0 <= eval_fraction < 1:
        raise InvalidArgumentError(f"data.eval_fraction: must be in [0, 1), got {eval_fraction}")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = round(len(rows) * eval_fraction)
    eval_idx = set(order[:n_eval])
    train = [r for i, r in enumerate(rows) if i not in eval_idx]
    return train, [rows[i] for i in sorted(eval_idx)]


# -- datasets sent by the client in chunks ------------------------------------------------------------


class DatasetStore:
    """Rows the client streams in with ``data_open`` / ``data_append``, by dataset id. Thread-safe."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(self, dataset: str | None = None) -> str:
        with self._lock:
            if dataset is None:
                dataset = f"ds-{next(self._ids)}"
                while dataset in self._rows:
                    dataset = f"ds-{next(self._ids)}"
            elif not isinstance(dataset, str) or not dataset:
                raise InvalidArgumentError(f"dataset: expected a non-empty string, got {dataset!r:.40}")
            elif dataset in self._rows:
                raise InvalidArgumentError(f"dataset: {dataset!r} is already open; close it or pick another id")
            self._rows[dataset] = []
            return dataset

    def append(self, dataset: str, rows: Any) -> int:
        if not isinstance(rows, list):
            raise InvalidArgumentError(f"rows: expected a list of objects, got {type(rows).__name__}")
        with self._lock:
            target = self._get(dataset)
            if len(target) + len(rows) > MAX_DATASET_ROWS:
                raise TooLargeError(f"dataset {dataset!r}: more than {MAX_DATASET_ROWS} rows; use a JSONL file")
            target.extend(rows)
            return len(target)

    def rows(self, dataset: str) -> list[Any]:
        with self._lock:
            return list(self._get(dataset))

    def close(self, dataset: str) -> bool:
        with self._lock:
            return self._rows.pop(dataset, None) is not None

    def _get(self, dataset: str) -> list[Any]:
        if dataset not in self._rows:
            raise NotFoundError(f"dataset: no open dataset {dataset!r} (open one with data_open)")
        return self._rows[dataset]


DATASETS = "datasets"  # state.cache key of the worker's DatasetStore


def dataset_store(state) -> DatasetStore:
    """The worker's dataset store (one per worker process, in its shared ``WorkerState``)."""
    return state.get_or_create(DATASETS, DatasetStore)


# -- resolving a data spec ----------------------------------------------------------------------------

_SPEC_KEYS = {"train", "eval", "eval_fraction", "on_bad_row"}


@dataclass
class DataOptions:
    """The options of a job's ``data`` besides its ``train`` / ``eval`` sources (``resolve_data`` reads those)."""

    eval_fraction: float = option(0.0, ge=0, lt=1, message="range", doc=(
        "Share of the training rows held out for evaluation when ``eval`` is not given (a shuffle seeded by "
        "``training.seed``)."))
    on_bad_row: str = option("fail", choices=ON_BAD_ROW, doc=(
        "A row the task cannot use: ``fail`` stops the job with its ``file:line``; ``skip`` goes on and lists "
        "every skipped row in the ``data`` event."))


def resolve_data(spec: Any, validate: Validate, *, store: DatasetStore | None, seed: int,
                 base_dir: str | Path | None = None) -> tuple[list[dict], list[dict], DataReport]:
    """``(train_rows, eval_rows, report)`` for a data spec (see the module docstring)."""
    if not isinstance(spec, dict):
        raise InvalidArgumentError(f"data: expected a map, got {type(spec).__name__}")
    unknown = sorted(map(str, set(spec) - _SPEC_KEYS))
    if unknown:
        raise InvalidArgumentError(f"data: unknown field(s) {unknown}; known: {sorted(_SPEC_KEYS)}")
    check_fields(DataOptions, {k: spec[k] for k in ("on_bad_row",) if k in spec}, "data.")
    on_bad_row = spec.get("on_bad_row", "fail")
    check_values(DataOptions(on_bad_row=on_bad_row), "data.")
    if "train" not in spec:
        raise InvalidArgumentError("data.train: missing")
    eval_fraction = spec.get("eval_fraction", 0.0)
    if isinstance(eval_fraction, bool) or not isinstance(eval_fraction, (int, float)):
        raise InvalidArgumentError(f"data.eval_fraction: expected a number, got {eval_fraction!r:.40}")
    if "eval" in spec and eval_fraction:
        raise InvalidArgumentError("data.eval_fraction: give either explicit eval data or eval_fraction, not both")
    report = DataReport()
    train = _source(spec["train"], "data.train", validate, on_bad_row, report, store, base_dir)
    if "eval" in spec:
        eval_rows = _source(spec["eval"], "data.eval", validate, on_bad_row, report, store, base_dir)
    else:
        train, eval_rows = split_rows(train, float(eval_fraction), seed)
    if not train:
        raise InvalidArgumentError("data.train: no usable training rows"
                                   + (f" ({report.skipped} skipped)" if report.skipped else ""))
    report.train_rows, report.eval_rows = len(train), len(eval_rows)
    return train, eval_rows, report


def _source(src: Any, name: str, validate: Validate, on_bad_row: str, report: DataReport,
            store: DatasetStore | None, base_dir) -> list[dict]:
    if not isinstance(src, dict) or len(src) != 1 or next(iter(src)) not in ("path", "dataset", "rows"):
        raise InvalidArgumentError(f"{name}: expected exactly one of {{'path'}}, {{'dataset'}}, {{'rows'}}, "
                                   f"got {src!r:.80}")
    kind, value = next(iter(src.items()))
    if kind == "path":
        if not isinstance(value, str) or not value:
            raise InvalidArgumentError(f"{name}.path: expected a file path, got {value!r:.40}")
        path = Path(value) if base_dir is None or Path(value).is_absolute() else Path(base_dir) / value
        return load_jsonl(path, validate, on_bad_row=on_bad_row, report=report)
    if kind == "dataset":
        if store is None:
            raise InvalidArgumentError(f"{name}.dataset: datasets are only available through the worker")
        try:
            rows = store.rows(value)
        except WorkerError as exc:
            raise type(exc)(f"{name}.{exc.message}") from exc
        return validate_rows(rows, f"dataset {value}", validate, on_bad_row=on_bad_row, report=report)
    if not isinstance(value, list):
        raise InvalidArgumentError(f"{name}.rows: expected a list of objects, got {type(value).__name__}")
    return validate_rows(value, f"{name}.rows", validate, on_bad_row=on_bad_row, report=report)
