"""Builds data/pyfaq/: question -> answer retrieval pairs from the Python FAQ (CPython 3.11 documentation).

Source: the HTML FAQ pages of Debian's ``python3.11-doc`` package (``/usr/share/doc/python3.11/html/faq``),
the CPython documentation, © Python Software Foundation, licensed under the PSF License Version 2 (see
https://docs.python.org/3/license.html); redistributed here as extracted text with this notice.

Every FAQ entry is a section whose heading is a question: the heading is the query, the section's own text
(paragraphs, lists and code, not its sub-sections) is the one relevant document. Entries are split
deterministically by a hash of the question: two in five go to ``eval``, the rest to ``train``; the eval
corpus is every answer (train answers are distractors, never positives of an eval query).

    apt-get install python3.11-doc && python3 data/build_pyfaq.py
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

SOURCE = Path("/usr/share/doc/python3.11/html/faq")
PAGES = ("general", "programming", "design", "library", "extending", "windows", "gui", "installed")
OUT = Path(__file__).resolve().parent / "pyfaq"
MIN_ANSWER_CHARS = 40
EVAL_BUCKETS, BUCKETS = 2, 5  # hash buckets 0..1 of 0..4 go to eval: 40%


class _Sections(HTMLParser):
    """Collects (heading, own text) of every ``<section>``, its nested sections' text excluded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[dict] = []  # open sections, innermost last
        self.done: list[dict] = []
        self.in_heading = False
        self.skip = 0  # inside a header link (the pilcrow) or a script/style

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.stack.append({"heading": "", "text": []})
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6") and self.stack and not self.stack[-1]["heading"]:
            self.in_heading = True
        elif tag == "a" and "headerlink" in (attrs.get("class") or ""):
            self.skip += 1
        elif tag in ("script", "style"):
            self.skip += 1
        elif tag in ("p", "li", "pre", "br", "dd", "dt") and self.stack:
            self.stack[-1]["text"].append(" ")

    def handle_endtag(self, tag):
        if tag == "section" and self.stack:
            self.done.append(self.stack.pop())
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.in_heading = False
        elif tag in ("a", "script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if self.skip or not self.stack:
            return
        section = self.stack[-1]
        if self.in_heading:
            section["heading"] += data
        else:
            section["text"].append(data)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("¶", "")).strip()


def entries(page: str) -> list[dict]:
    parser = _Sections()
    parser.feed((SOURCE / f"{page}.html").read_text(encoding="utf-8"))
    out = []
    for section in parser.done:
        question, answer = _clean(section["heading"]), _clean("".join(section["text"]))
        if question.endswith("?") and len(answer) >= MIN_ANSWER_CHARS:
            out.append({"query": question, "positive": answer, "page": page})
    return out


def main() -> int:
    if not SOURCE.is_dir():
        print(f"{SOURCE} is missing: apt-get install python3.11-doc", file=sys.stderr)
        return 1
    rows = [row for page in PAGES for row in entries(page)]
    seen, unique = set(), []
    for row in rows:  # a question asked twice keeps its first answer
        if row["query"] not in seen:
            seen.add(row["query"])
            unique.append(row)
    split = {"train": [], "eval": []}
    for row in unique:
        bucket = int(hashlib.sha256(row["query"].encode()).hexdigest(), 16) % BUCKETS
        split["eval" if bucket < EVAL_BUCKETS else "train"].append(row)
    OUT.mkdir(exist_ok=True)
    for name, part in split.items():
        with open(OUT / f"retrieval.{name}.jsonl", "w", encoding="utf-8") as fh:
            for row in part:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    manifest = {"source": "CPython 3.11 FAQ (Debian python3.11-doc)", "licence": "PSF License Version 2",
                "pages": list(PAGES), "train": len(split["train"]), "eval": len(split["eval"])}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
