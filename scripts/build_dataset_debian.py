#!/usr/bin/env python3
"""Build the offline Debian-descriptions data sets under ``data/debian/`` (standard library only).

Source text: the English package descriptions of Debian ``main`` (a one-line *synopsis* written by the
package's maintainer plus a *long description*), read from apt's own index files. Nothing is fetched
here; apt must already have the indexes **with English descriptions** (they are off by default on
slim images)::

    apt-get update -o Acquire::Languages=en        # once, as root
    python3 scripts/build_dataset_debian.py        # writes data/debian/*.jsonl + manifest.json

What it writes (every row carries ``source`` and ``package`` for attribution and split checks):

    retrieval.{train,eval}.jsonl  {query: synopsis, positive: long description}        suffix tuning
    rerank.{train,eval}.jsonl     {query, positive, negatives: [3 BM25-hard, same split]} passage tuning
    classify.{train,eval}.jsonl   {input: long description, label: Debian section}  prompt/prefix tuning
    generate.{train,eval}.jsonl   {input: long description, target: synopsis}       prompt/prefix tuning

Split: by Debian *source* package, never by row. A source goes to ``eval`` when
``sha256(SALT + source) mod 100 < EVAL_PERCENT``; every row of every file inherits its source's split,
so no text of an eval row (nor a sibling binary package's near-copy of it) is in any train file. One
binary package per source is used (the one named like the source, else the first by name).

Deterministic: the same index files give byte-identical outputs (sorted inputs, hash-based order, no
RNG). The manifest records the sha256 of every input index, so a rebuild on another day (a Debian point
release) or another release shows up as different inputs rather than silently different data.
"""

from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

SALT = "softprompt/debian/v1/"
EVAL_PERCENT = 15
ORDER_SALT = "softprompt/debian/order/v1/"
MIN_CHARS, MAX_CHARS = 120, 600  # long-description length kept: enough text to learn from, short for CPUs
SIZES = {  # rows per split
    "retrieval": {"train": 2000, "eval": 300},
    "rerank": {"train": 1000, "eval": 300},
    "generate": {"train": 2000, "eval": 300},
}
NEGATIVES = 3
# Five sections with different topics and enough sources (after the filters) for balanced classes.
CLASSIFY_LABELS = ("admin", "games", "net", "science", "sound")
CLASSIFY_PER_LABEL = {"train": 300, "eval": 60}
# Sections whose descriptions are mostly templates ("This package contains the development files for
# libfoo", "Perl module for X") or whose packages exist for another package: left out of every set.
SKIP_SECTIONS = {
    "libs", "libdevel", "oldlibs", "doc", "debug", "introspection", "metapackages", "localization",
    "perl", "python", "golang", "javascript", "rust", "ruby", "java", "gnu-r", "haskell", "ocaml", "php",
    "lisp", "cli-mono", "fonts", "tasks", "kernel",
}
SKIP_WORDS = re.compile(r"transitional|dummy package|metapackage|debug symbols|this package is empty", re.I)
APT_HELPER = "/usr/lib/apt/apt-helper"
REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lists", default="/var/lib/apt/lists", help="apt's index folder")
    parser.add_argument("--suite", default=None, help="release codename (default: this machine's)")
    parser.add_argument("--out", default=str(REPO / "data" / "debian"), help="output folder")
    args = parser.parse_args(argv)
    suite = args.suite or _os_codename()
    packages_files, translation_files = _index_files(Path(args.lists), suite)
    rows = _rows(packages_files, translation_files)
    sets = build(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, data in sets.items():
        path = out / f"{name}.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for row in data:
                fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        counts[name] = len(data)
    manifest = {
        "suite": suite,
        "release": _release_fields(Path(args.lists), suite),
        "inputs": {Path(p).name: _sha256_file(p) for p in packages_files + translation_files},
        "split": {"by": "debian source package", "salt": SALT, "eval_percent": EVAL_PERCENT},
        "filters": {"long_description_chars": [MIN_CHARS, MAX_CHARS], "skip_sections": sorted(SKIP_SECTIONS)},
        "classify_labels": list(CLASSIFY_LABELS),
        "rows": counts,
        "outputs": {f"{n}.jsonl": _sha256_file(out / f"{n}.jsonl") for n in sets},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(counts, sort_keys=True))
    return 0


# ---------------------------------------------------------------- reading apt's indexes

def _os_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise SystemExit("cannot tell the Debian release: pass --suite (e.g. bookworm)")


def _index_files(lists: Path, suite: str) -> tuple[list[str], list[str]]:
    # The base suite only (not -updates/-security): it changes at point releases, not every day.
    packages = sorted(glob.glob(str(lists / f"*_dists_{suite}_main_binary-*_Packages*")))
    translations = sorted(glob.glob(str(lists / f"*_dists_{suite}_main_i18n_Translation-en*")))
    packages = [p for p in packages if not p.endswith((".diff_Index", "IndexDiff"))]
    if not packages:
        raise SystemExit(f"no Packages index for {suite}/main in {lists}: run `apt-get update` first")
    if not translations:
        raise SystemExit(f"no English descriptions (Translation-en) for {suite}/main in {lists}: run "
                         "`apt-get update -o Acquire::Languages=en` first")
    return packages, translations


def _release_fields(lists: Path, suite: str) -> dict[str, str]:
    """Origin, Version and Date of the suite's signed Release file (which index snapshot this was)."""
    for path in sorted(glob.glob(str(lists / f"*_dists_{suite}_InRelease"))):
        fields = dict(line.split(": ", 1) for line in Path(path).read_text(errors="replace").splitlines()
                      if line.startswith(("Origin: ", "Version: ", "Date: ")))
        return fields
    return {}


def _stanzas(path: str):
    """Yield each deb822 stanza of an index file (any compression apt uses) as {field: value}."""
    text = subprocess.run([APT_HELPER, "cat-file", path], capture_output=True, text=True, check=True).stdout
    for block in text.split("\n\n"):
        record: dict[str, str] = {}
        key = None
        for line in block.split("\n"):
            if line[:1] in (" ", "\t") and key is not None:
                record[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                record[key] = value.strip()
        if record:
            yield record


def _rows(packages_files: list[str], translation_files: list[str]) -> list[dict]:
    """One row per source package: {source, package, section, synopsis, description}."""
    binaries: dict[str, dict] = {}
    for path in packages_files:  # several architectures list the same package: keep the first
        for st in _stanzas(path):
            binaries.setdefault(st["Package"], st)
    english: dict[tuple[str, str], str] = {}
    for path in translation_files:
        for st in _stanzas(path):
            english[(st["Package"], st["Description-md5"])] = st["Description-en"]
    by_source: dict[str, list[str]] = collections.defaultdict(list)
    for name, st in binaries.items():
        by_source[st.get("Source", name).split()[0]].append(name)
    rows = []
    for source in sorted(by_source):
        names = sorted(by_source[source])
        name = source if source in names else names[0]
        st = binaries[name]
        full = english.get((name, st.get("Description-md5", "")))
        if full is None:
            continue
        synopsis, description = _split_description(full)
        rows.append({"source": source, "package": name, "section": st.get("Section", "").split("/")[-1],
                     "synopsis": synopsis, "description": description})
    return rows


_BULLET = re.compile(r"\s*([*+\-o]|\d+[.)])\s")


def _split_description(full: str) -> tuple[str, str]:
    """Debian description -> (synopsis, readable long text).

    Policy 5.6.13: continuation lines start with one space and " ." is a blank line. Bullets ("* ", "- ",
    "+ ", "o ", "1. ", any indent) start a new line; every other line is wrapped text and is joined to
    the line before it (in practice indented lines are bullet continuations far more often than the
    verbatim blocks the policy allows).
    """
    first, *body = full.split("\n")
    paragraphs: list[list[str]] = [[]]
    for raw in body:
        line = raw[1:] if raw.startswith(" ") else raw
        if line.strip() == ".":
            paragraphs.append([])
        elif not paragraphs[-1] or _BULLET.match(line):
            paragraphs[-1].append(line.strip())
        else:  # wrapped text, including the indented continuation of a bullet
            paragraphs[-1][-1] += " " + line.strip()
    text = "\n".join("\n".join(p) for p in paragraphs if p)
    return re.sub(r"[ \t]+", " ", first.strip()), re.sub(r"[ \t]+", " ", text).strip()


# ---------------------------------------------------------------- building the sets

def build(rows: list[dict]) -> dict[str, list[dict]]:
    usable = [r for r in rows if _usable(r)]
    # Identical long texts (forks, renamed packages) would be ambiguous positives: keep the first source.
    seen, unique = set(), []
    for r in usable:
        key = _norm(r["description"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    split = {s: sorted((r for r in unique if _split_of(r["source"]) == s), key=_order) for s in ("train", "eval")}
    sets: dict[str, list[dict]] = {}
    for s, pool in split.items():
        n = SIZES["retrieval"][s]
        sets[f"retrieval.{s}"] = [_base(r) | {"query": r["synopsis"], "positive": r["description"]} for r in pool[:n]]
        n = SIZES["generate"][s]
        sets[f"generate.{s}"] = [_base(r) | {"input": r["description"], "target": r["synopsis"]} for r in pool[:n]]
        sets[f"rerank.{s}"] = _rerank(pool, SIZES["rerank"][s])
        sets[f"classify.{s}"] = _classify(pool, CLASSIFY_PER_LABEL[s])
    return dict(sorted(sets.items()))


def _usable(r: dict) -> bool:
    return (r["section"] not in SKIP_SECTIONS and MIN_CHARS <= len(r["description"]) <= MAX_CHARS
            and len(r["synopsis"].split()) >= 3 and not SKIP_WORDS.search(r["synopsis"] + " " + r["description"]))


def _split_of(source: str) -> str:
    h = int(hashlib.sha256((SALT + source).encode()).hexdigest()[:8], 16)
    return "eval" if h % 100 < EVAL_PERCENT else "train"


def _order(r: dict) -> str:
    return hashlib.sha256((ORDER_SALT + r["source"]).encode()).hexdigest()


def _norm(text: str) -> str:
    return " ".join(_tokens(text))


def _base(r: dict) -> dict:
    return {"source": r["source"], "package": r["package"]}


def _classify(pool: list[dict], per_label: int) -> list[dict]:
    rows = []
    for label in CLASSIFY_LABELS:
        picked = [r for r in pool if r["section"] == label][:per_label]
        if len(picked) < per_label:
            raise SystemExit(f"classify: only {len(picked)} sources in section {label!r}, need {per_label}")
        rows += [_base(r) | {"input": r["description"], "label": label} for r in picked]
    return sorted(rows, key=_order)  # interleave labels deterministically


def _rerank(pool: list[dict], n: int) -> list[dict]:
    """Queries are the first ``n`` synopses; negatives are the top BM25 descriptions of the same split
    (the whole pool, not just the ``n``) for that synopsis, the positive excluded."""
    index = BM25([r["description"] for r in pool])
    rows = []
    for i, r in enumerate(pool[:n]):
        hits = [j for j in index.top(r["synopsis"], NEGATIVES + 1) if j != i]
        # A synopsis sharing too few words with the corpus: fill up with the next rows of the pool.
        hits += [j for j in range(i + 1, len(pool)) if j not in hits][:NEGATIVES - len(hits[:NEGATIVES])]
        negatives = [pool[j]["description"] for j in hits[:NEGATIVES]]
        rows.append(_base(r) | {"query": r["synopsis"], "positive": r["description"], "negatives": negatives})
    return rows


_STOP = set("a an and are as at be by for from in is it its of on or that the this to with which can you your "
            "it's these those has have not all also into use used using package provides contains".split())


def _tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in _STOP]


class BM25:
    """Okapi BM25 (k1=1.2, b=0.75) over an in-memory list of documents, via an inverted index."""

    def __init__(self, docs: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.postings: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
        self.lengths = []
        for i, doc in enumerate(docs):
            toks = _tokens(doc)
            self.lengths.append(len(toks))
            for term, tf in sorted(collections.Counter(toks).items()):
                self.postings[term].append((i, tf))
        self.avg = sum(self.lengths) / max(1, len(self.lengths))
        n = len(docs)
        self.idf = {t: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for t, p in self.postings.items()}

    def top(self, query: str, k: int) -> list[int]:
        scores: dict[int, float] = collections.defaultdict(float)
        for term in set(_tokens(query)):
            for i, tf in self.postings.get(term, ()):
                norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg)
                scores[i] += self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
        return [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def _sha256_file(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


if __name__ == "__main__":
    sys.exit(main())
