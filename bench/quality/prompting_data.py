"""Rows, prompt formats and few-shot demonstrations for the prompting quality bench (prompting.py).

Every method sees the same text around the description (the hand-written formats of data/README.md);
the soft prompt or prefix goes *before* it, LoRA changes the weights, few-shot adds demonstrations
from TRAIN rows before it. Descriptions are cut to their first ``desc_tokens`` tokens (the start of a
description says most about the package) before the format is applied, so the worker's left-side
truncation (``LMEncoder``) never cuts the format away.

    fmt = Formats.for_tokenizer(tok, desc_tokens=56)
    rows = classification_rows(load("classify.eval.jsonl"), fmt)     # {"input": "Description: ...", "label": " net"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "debian"
SECTIONS = ("admin", "games", "net", "science", "sound")
# Classification formats: (template, what goes before the label word). "plain" is data/README.md's best
# hand-written prompt (0.627 zero-shot); "chat" is the demo's (ts/src/demo.ts), where the <|im_end|> that
# the worker's task appends after the label is where the model's turn naturally ends.
CLASSIFY_FORMATS = {
    "plain": ("Description: {input}\nSection:", " "),
    "chat": ("<|im_start|>user\nWhich Debian section is this package in: admin, games, net, science, sound?\n"
             "{input}<|im_end|>\n<|im_start|>assistant\n", ""),
}
GENERATE_FORMAT = "Debian package description:\n{input}\n\nOne-line summary:"
# Prompt-tuning init texts: instructions a person would write (their words are the initial vectors).
# "sections" lists the labels, like the listing prompt that scores 0.257 zero-shot in data/README.md;
# "short" is the demo's (ts/src/demo.ts). The choice is made on the TRAIN dev slice (prompting.py --dev).
CLASSIFY_INSTRUCTIONS = {
    "sections": "Classify the Debian package by its section: admin, games, net, science or sound.",
    "short": "Classify the Debian package by its section:",
}
GENERATE_INSTRUCTION = "Summarise the Debian package description in one short line."


def load(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def verbalizer(section: str, style: str = "plain") -> str:
    """The label word as it follows the format: " admin" after ``Section:``, "admin" as the chat answer."""
    return CLASSIFY_FORMATS[style][1] + section


@dataclass
class Formats:
    """Cuts descriptions to a token budget and applies the hand-written formats."""

    tokenizer: object
    desc_tokens: int

    def cut(self, text: str, tokens: int | None = None) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        n = tokens or self.desc_tokens
        return text if len(ids) <= n else self.tokenizer.decode(ids[:n]).rstrip() + " ..."

    def classify(self, text: str, tokens: int | None = None, style: str = "plain") -> str:
        return CLASSIFY_FORMATS[style][0].format(input=self.cut(text, tokens))

    def generate(self, text: str, tokens: int | None = None) -> str:
        return GENERATE_FORMAT.format(input=self.cut(text, tokens))


def balanced(rows: list[dict], per_label: int) -> list[dict]:
    """The first ``per_label`` rows of each label, in file order (the files are in hash order)."""
    taken: dict[str, int] = {}
    out = []
    for row in rows:
        if taken.get(row["label"], 0) < per_label:
            taken[row["label"]] = taken.get(row["label"], 0) + 1
            out.append(row)
    return out


def split_dev(rows: list[dict], per_label: int) -> tuple[list[dict], list[dict]]:
    """``(train, dev)``: dev is the LAST ``per_label`` rows of each label (the file's tail is not balanced:
    it ends with the label that filled last), train is every other row, in file order."""
    dev_ids: set[int] = set()
    for label in {r["label"] for r in rows}:
        dev_ids |= set([i for i, r in enumerate(rows) if r["label"] == label][-per_label:])
    return ([r for i, r in enumerate(rows) if i not in dev_ids],
            [r for i, r in enumerate(rows) if i in dev_ids])


def classification_rows(rows: list[dict], fmt: Formats, style: str = "plain") -> list[dict]:
    return [{"input": fmt.classify(r["input"], style=style), "label": verbalizer(r["label"], style)} for r in rows]


def generation_rows(rows: list[dict], fmt: Formats) -> list[dict]:
    return [{"input": fmt.generate(r["input"]), "target": " " + r["target"]} for r in rows]


def classify_demos(train: list[dict], fmt: Formats, per_label: int, demo_tokens: int) -> str:
    """Few-shot context: ``per_label`` TRAIN rows per section (first in file order, sections interleaved),
    each in the classification format followed by its answer."""
    picked = balanced(train, per_label)
    by_label = {s: [r for r in picked if r["label"] == s] for s in SECTIONS}
    order = [by_label[s][j] for j in range(per_label) for s in SECTIONS]  # admin, games, ..., admin, ...
    return "".join(fmt.classify(r["input"], demo_tokens) + verbalizer(r["label"]) + "\n\n" for r in order)


def generate_demos(train: list[dict], fmt: Formats, k: int, demo_tokens: int, eos: str) -> str:
    """Few-shot context: the first ``k`` TRAIN rows, each answer ended by the EOS token the metric scores."""
    return "".join(fmt.generate(r["input"], demo_tokens) + " " + r["target"] + eos + "\n\n" for r in train[:k])
