"""Security checks of the worker:

- nothing loads pickle: the package source (read as syntax, so comments and docstrings don't count)
  imports no pickle-family module and calls no ``torch.load`` without ``weights_only=True``, no
  ``np.load(allow_pickle=True)``, no ``read_pickle``; and the installed torch refuses pickled objects by
  default (what transformers relies on for ``.bin`` weights);
- ``trust_remote_code`` reaches ``from_pretrained`` as False unless the spec sets a real True;
- files are written only under the directory the user chose: names with ``..``, absolute names and
  symlinks that lead outside are refused, and the file outside is left as it was.
"""

from __future__ import annotations

import ast
import os
import pickle  # noqa: S403 - only to build the file torch must refuse
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from softprompt_worker.training.checkpoints import resolve_under, save_checkpoint
from softprompt_worker.errors import InvalidArgumentError
from softprompt_worker.models import ModelSpec
from softprompt_worker.training.runs import RunDir

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "softprompt_worker"
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "pickletools"}


# -- no pickle -------------------------------------------------------------------------------------------

def pickle_risks(source: str, filename: str = "<src>") -> list[str]:
    """Lines of ``source`` that could unpickle: imports of pickle-family modules, ``torch.load`` without
    ``weights_only=True``, ``numpy.load(allow_pickle=True)``, ``read_pickle``, ``import_module("pickle")``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            kwargs = {k.arg: k.value for k in node.keywords}
            last = name.rsplit(".", 1)[-1]
            if last == "load" and name.split(".")[0] == "torch":
                value = kwargs.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    found.append(f"{where}: {name}(...) without weights_only=True")
            elif last == "load" and name.split(".")[0] in ("np", "numpy"):
                value = kwargs.get("allow_pickle")
                if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                    found.append(f"{where}: {name}(..., allow_pickle=...)")
            elif last in ("read_pickle", "loads") and name.split(".")[0] in PICKLE_MODULES | {"pd", "pandas"}:
                found.append(f"{where}: {name}(...)")
            elif last in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and str(node.args[0].value).split(".")[0] in PICKLE_MODULES:
                found.append(f"{where}: {name}({node.args[0].value!r})")
    return found


def test_the_worker_source_never_unpickles():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20, "did not find the package source"
    risks = [r for f in files for r in pickle_risks(f.read_text(), str(f.relative_to(PACKAGE)))]
    assert risks == []


@pytest.mark.parametrize("snippet", [
    "import pickle", "import cloudpickle as cp", "from joblib import load", "import dill.settings",
    "torch.load(path)", "torch.load(path, weights_only=False)", "torch.load(path, weights_only=flag)",
    "torch.serialization.load(f)", "np.load(f, allow_pickle=True)", "numpy.load(f, allow_pickle=ok)",
    "pd.read_pickle(p)", "pickle.loads(b)", "importlib.import_module('pickle')", "__import__('marshal')",
])
def test_the_pickle_scan_finds(snippet):
    assert pickle_risks(snippet)


@pytest.mark.parametrize("snippet", [
    "torch.load(path, weights_only=True)", "np.load(f)", "np.load(f, allow_pickle=False)", "json.load(f)",
    "load_file(p)", "x = 'pickle'  # a string, not an import", '"""No pickle anywhere."""',
])
def test_the_pickle_scan_allows(snippet):
    assert pickle_risks(snippet) == []


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())  # harmless, but arbitrary code at load time all the same


def test_torch_load_refuses_pickled_objects_by_default(tmp_path):
    """transformers reads legacy ``pytorch_model.bin`` with ``torch.load``; the installed torch must refuse
    anything but tensors and plain containers unless weights_only=False is asked for explicitly."""
    path = tmp_path / "evil.bin"
    with path.open("wb") as f:
        pickle.dump({"w": _Payload()}, f, protocol=2)  # the protocol torch.save writes
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.bin")
    assert torch.equal(torch.load(tmp_path / "ok.bin")["w"], torch.ones(2))


# -- trust_remote_code -------------------------------------------------------------------------------

@pytest.fixture
def from_pretrained_calls(monkeypatch):
    """Replaces transformers' Auto*.from_pretrained with recorders (nothing is downloaded or run)."""
    import transformers

    calls: list[tuple[str, dict]] = []
    config = SimpleNamespace(is_encoder_decoder=False, architectures=["GPT2LMHeadModel"], model_type="gpt2")

    def recorder(cls_name):
        def from_pretrained(name, **kwargs):
            calls.append((cls_name, kwargs))
            return config if cls_name == "AutoConfig" else SimpleNamespace()
        return from_pretrained

    for cls_name in ("AutoConfig", "AutoTokenizer", "AutoModel", "AutoModelForCausalLM", "AutoModelForSeq2SeqLM"):
        monkeypatch.setattr(getattr(transformers, cls_name), "from_pretrained", recorder(cls_name))
    return calls


@pytest.mark.parametrize("raw, expected", [
    ({"name_or_path": "some/model"}, False),
    ({"name_or_path": "some/model", "trust_remote_code": False}, False),
    ({"name_or_path": "some/model", "trust_remote_code": True}, True),
])
def test_trust_remote_code_reaches_from_pretrained_only_when_set(from_pretrained_calls, raw, expected):
    from softprompt_worker.models import _load_pretrained

    _load_pretrained(ModelSpec.from_dict(raw), torch.float32, torch.device("cpu"))
    assert [c for c, _ in from_pretrained_calls] == ["AutoConfig", "AutoTokenizer", "AutoModelForCausalLM"]
    assert all(kwargs["trust_remote_code"] is expected for _, kwargs in from_pretrained_calls)


# -- writes stay under the chosen directory -------------------------------------------------------------

@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside the chosen directory that nothing may touch."""
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("untouched\n")
    return victim


@pytest.mark.parametrize("name", ["../escape.pb", "checkpoints/../../escape.pb", "/tmp/escape.pb", "a/../../b.pb"])
def test_names_that_leave_the_directory_are_refused(tmp_path, name):
    root = tmp_path / "run"
    root.mkdir()
    with pytest.raises(InvalidArgumentError, match="escapes"):
        resolve_under(root, name)
    with pytest.raises(InvalidArgumentError, match="escapes"):
        save_checkpoint(name, method=None, step=1, root=root)  # refused before anything is built
    assert not list(tmp_path.glob("*.pb")) and not Path("/tmp/escape.pb").exists()


def test_symlinks_are_followed_only_inside(tmp_path, outside):
    root = tmp_path / "run"
    (root / "sub").mkdir(parents=True)
    (root / "inside-link").symlink_to(root / "sub")
    (root / "outside-link").symlink_to(outside.parent)
    assert resolve_under(root, "inside-link/x.pb") == (root / "sub" / "x.pb").resolve()
    assert resolve_under(root, "sub/../x.pb") == (root / "x.pb").resolve()
    with pytest.raises(InvalidArgumentError):
        resolve_under(root, "outside-link/x.pb")


def test_run_dir_refuses_a_checkpoints_folder_that_leads_outside(tmp_path, outside):
    root = tmp_path / "run"
    root.mkdir()
    (root / "checkpoints").symlink_to(outside.parent)
    with pytest.raises(InvalidArgumentError, match="outside"):
        RunDir(str(root))


def test_run_dir_never_writes_through_a_symlink_to_outside(tmp_path, outside):
    root = tmp_path / "run"
    run = RunDir(str(root))
    (root / "events.jsonl").symlink_to(outside)
    with pytest.raises(InvalidArgumentError, match="outside"):
        run.events()
    # job.json and its temp files: replaced or refused, never written through.
    (root / "job.json").symlink_to(outside)
    for tmp_name in (".job.json.tmp",):
        (root / tmp_name).symlink_to(outside)
    try:
        run.write_job({"method": "prompt_tuning"})
    except InvalidArgumentError:
        pass
    assert outside.read_text() == "untouched\n"
    assert not (root / "job.json").is_symlink() or (root / "job.json").resolve() == outside


def test_saved_rows_never_land_outside(tmp_path, outside):
    if not hasattr(RunDir, "save_rows"):
        pytest.skip("this tree's RunDir does not save rows")
    root = tmp_path / "run"
    run = RunDir(str(root))
    (root / "data").symlink_to(outside.parent)
    with pytest.raises(InvalidArgumentError, match="outside"):
        run.save_rows([{"input": "a", "target": "b"}], [], job_id="j")
    assert sorted(p.name for p in outside.parent.iterdir()) == ["victim.txt"]


def test_peft_export_never_writes_through_a_symlink(tmp_path, outside):
    from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
    from softprompt_worker.models import load_frozen_model
    from softprompt_worker.peft_io import WEIGHTS_FILE, export_peft

    frozen = load_frozen_model(ModelSpec(tiny="gpt2", device="cpu"))
    method = PromptTuning(PromptTuningConfig(num_virtual_tokens=2, init="random"), frozen)
    out = tmp_path / "adapter"
    out.mkdir()
    (out / WEIGHTS_FILE).symlink_to(outside)
    export_peft(method, out)  # the planted link is replaced by the file (a rename in out_dir), never followed
    assert outside.read_text() == "untouched\n"
    assert not (out / WEIGHTS_FILE).is_symlink() and (out / WEIGHTS_FILE).stat().st_size > 0



def test_a_link_swapped_in_after_the_check_cannot_redirect_a_write(tmp_path, outside, monkeypatch):
    # The swap happens exactly between the containment check (resolve_under) and the write: the write walks
    # the run directory by descriptors with O_NOFOLLOW, so it refuses the swapped-in link instead of following.
    import softprompt_worker.training.checkpoints as checkpoints
    from softprompt_worker.methods.prompt_tuning import PromptTuning, PromptTuningConfig
    from softprompt_worker.models import load_frozen_model

    method = PromptTuning(PromptTuningConfig(num_virtual_tokens=2, init="random"),
                          load_frozen_model(ModelSpec(tiny="gpt2", device="cpu")))
    root = tmp_path / "run"
    run = RunDir(str(root))
    checked = checkpoints.resolve_under

    def check_then_swap(base, name):
        target = checked(base, name)  # the check passes: checkpoints/ is a real folder inside
        (root / "checkpoints").rmdir()
        (root / "checkpoints").symlink_to(outside.parent)  # the attacker's swap
        return target

    monkeypatch.setattr(checkpoints, "resolve_under", check_then_swap)
    with pytest.raises(InvalidArgumentError, match="link"):
        save_checkpoint(run.checkpoint_path(1), method, step=1, root=root)
    assert sorted(p.name for p in outside.parent.iterdir()) == ["victim.txt"]

    (root / "events.jsonl").symlink_to(outside)  # the final component swapped for a link: refused too
    with pytest.raises(InvalidArgumentError):
        from softprompt_worker.files import open_append_under

        open_append_under(root.resolve(), root.resolve() / "events.jsonl")
    assert outside.read_text() == "untouched\n"
