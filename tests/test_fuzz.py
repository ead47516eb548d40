"""Fuzz: hundreds of malformed or hostile definitions and model folders through `aipc deploy`.

Each case must end with exit 0, 1 or 2, no traceback, and (for bad input) a message naming the field
or file that was broken; while the bot runs, an audit hook records every file opened, and nothing
outside the allowed roots may be read or written.

Allowed roots (each one justified; the toolchain is imported before recording starts):
- the case's model folder and its deployment folder: what the bot is there to read and write;
- the bot's own package folder (`bot/`, an editable install lives in the checkout): templates, the
  workflow, skills' patches it reads lazily;
- the installed packages (the venv's site-packages) and the Python stdlib, with its `python3NN.zip`
  entry on sys.path: modules imported lazily (importlib probes and opens their source/bytecode) and
  data files shipped inside packages;
Nothing else: not the temporary directory (the load stage needs none; a library that writes there
would be a finding), not /etc, not the user's home. Native code (onnxruntime's C++) opening files
raises no audit event and is not seen: the fuzz cases stop at the spec or the load stage, which
open files from Python.

The stages after `load` are out of scope here (their inputs are the bot's own artifacts, and other
tests cover them on the HTP): the workflow is cut to `load`, so a case costs milliseconds, not the
seconds of an HTP compile. Case count: AIPC_FUZZ_EXAMPLES (default 120, about a minute on two cores;
the long run is AIPC_FUZZ_EXAMPLES=600). AIPC_FUZZ_REPORT=<file> writes the tally as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import bot
from bot.cli import app

EXAMPLES = int(os.environ.get("AIPC_FUZZ_EXAMPLES", "120"))

MODEL = '''
import torch
import torch.nn as nn


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return {forward}


def build():
    torch.manual_seed(0)
    {build}
'''


def model_code(forward: str = "self.c(x)", build: str = "return M().eval()", head: str = "") -> bytes:
    return (head + textwrap.dedent(MODEL).format(forward=forward, build=build)).encode()


def base_spec() -> dict:
    return {"name": "fuzz", "entry": "model.py:build", "inputs": [{"name": "x", "shape": [1, 3, 8, 8]}],
            "outputs": ["y"], "calibration": {"samples": 2}, "validation": {"samples": 1},
            "limits": {"stage_seconds": 20}}  # the hang cases set 1 s; a loaded CI machine is slow, not hung


@dataclass
class Case:
    label: str
    spec: dict | None = field(default_factory=base_spec)
    raw: bytes | None = None  # aipc.yaml as bytes, instead of `spec`
    files: dict[str, bytes] = field(default_factory=lambda: {"model.py": model_code()})
    links: dict[str, str] = field(default_factory=dict)  # name in the model folder → target ("@out/…" outside)
    outside: dict[str, bytes] = field(default_factory=dict)  # files beside the model folder, never to be read
    needles: tuple[str, ...] = ()  # for exit 2: the message names one of these
    codes: tuple[int, ...] = (0, 1, 2)


# ---------------------------------------------------------------------------------------------- strategies
FIELDS = ["name", "entry", "onnx", "inputs", "outputs", "calibration", "target", "validation", "export", "limits",
          "llm", "repairs", "variants", "graphs", "decode", "chain"]
NESTED = [("inputs", 0, "name"), ("inputs", 0, "shape"), ("inputs", 0, "dtype"), ("inputs", 0, "range"),
          ("inputs", 0, "files"), ("inputs", 0, "layout"), ("calibration", "samples"), ("calibration", "generator"),
          ("calibration", "files"), ("calibration", "method"), ("target", "soc"), ("target", "precision"),
          ("target", "runtime"), ("validation", "samples"), ("validation", "outputs"), ("validation", "seed"),
          ("limits", "repair_attempts"), ("limits", "stage_seconds"), ("limits", "data_gb"), ("export", "opset"),
          ("export", "exporter")]
values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


def _set(d: dict, path: tuple, value) -> None:
    for p in path[:-1]:
        d = d.setdefault(p, {}) if isinstance(p, str) else d[p]
    d[path[-1]] = value


def _dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + p
    return out


@st.composite
def wrong_type(draw):
    c = Case("wrong type")
    if draw(st.booleans()):
        key = draw(st.sampled_from(FIELDS))
        c.spec[key] = draw(values)
        c.needles = (key,)
    else:
        path = draw(st.sampled_from(NESTED))
        _set(c.spec, path, draw(values))
        c.needles = (_dotted(path), path[0])
    return c


@st.composite
def missing_or_unknown(draw):
    c = Case("missing/unknown field")
    kind = draw(st.sampled_from(["drop-top", "drop-input", "unknown-top", "unknown-nested"]))
    if kind == "drop-top":
        key = draw(st.sampled_from(["entry", "inputs"]))
        del c.spec[key]
        c.needles = (key, "entry")
    elif kind == "drop-input":
        key = draw(st.sampled_from(["name", "shape"]))
        del c.spec["inputs"][0][key]
        c.needles = (f"inputs[0].{key}",)
    else:
        key = draw(st.from_regex(r"[a-z][a-z_]{2,10}", fullmatch=True).filter(lambda k: k not in FIELDS))
        where = c.spec if kind == "unknown-top" else c.spec[draw(st.sampled_from(["calibration", "validation",
                                                                                  "limits"]))]
        where[key] = draw(values)
        c.needles = (key,)
    return c


@st.composite
def names_that_do_not_exist(draw):
    c = Case("name that does not exist")
    name = draw(st.from_regex(r"[a-z][a-z0-9_]{1,8}", fullmatch=True).filter(lambda n: n not in ("y", "x")))
    kind = draw(st.sampled_from(["validation-output", "repair", "variant-input", "output-count", "generator-fn",
                                 "entry-fn"]))
    if kind == "validation-output":
        c.spec["validation"]["outputs"] = {name: {"cosine_min": 0.9}}
    elif kind == "repair":
        c.spec["repairs"] = [name + "-repair"]
        name = name + "-repair"
    elif kind == "variant-input":
        c.spec["variants"] = [{"name": "v1", "shapes": {name: [1, 3, 8, 8]}}]
    elif kind == "output-count":
        c.spec["outputs"] = ["y", name]
    elif kind == "generator-fn":
        c.spec["calibration"]["generator"] = f"model.py:{name}"
    else:
        c.spec["entry"] = f"model.py:{name}"
    c.needles = (name, "outputs")
    return c


@st.composite
def hostile_paths(draw):
    c = Case("path out of the folder")
    c.outside = {"evil.py": model_code(head="import sys\nsys.stderr.write('EVIL IMPORTED')\n"),
                 "data.npy": b"\x93NUMPY fake"}
    kind = draw(st.sampled_from(["dotdot-entry", "abs-entry", "dotdot-files", "abs-files", "dotdot-calib",
                                 "abs-generator", "symlink-entry", "symlink-helper", "symlink-dir", "symlink-yaml",
                                 "symlink-data"]))
    ups = "../" * draw(st.integers(1, 4))
    if kind == "dotdot-entry":
        c.spec["entry"] = f"{ups}evil.py:build"
        c.needles = ("entry",)
    elif kind == "abs-entry":
        c.spec["entry"] = draw(st.sampled_from(["/etc/passwd:build", "/@out/evil.py:build"]))
        c.needles = ("entry",)
    elif kind == "dotdot-files":
        c.spec["inputs"][0]["files"] = [f"{ups}data.npy"]
        c.needles = ("inputs[0].files[0]",)
    elif kind == "abs-files":
        c.spec["inputs"][0]["files"] = ["/etc/passwd"]
        c.needles = ("inputs[0].files[0]",)
    elif kind == "dotdot-calib":
        c.spec["calibration"]["files"] = [f"{ups}data.npy"]
        c.needles = ("calibration.files[0]",)
    elif kind == "abs-generator":
        c.spec["calibration"]["generator"] = "/etc/passwd:gen"
        c.needles = ("calibration.generator",)
    elif kind == "symlink-entry":
        c.files = {}
        c.links = {"model.py": "@out/evil.py"}
        c.needles = ("model.py", "entry")
    elif kind == "symlink-helper":
        c.links = {"helper.py": draw(st.sampled_from(["@out/evil.py", "/etc/passwd"]))}
        c.needles = ("helper.py",)
    elif kind == "symlink-dir":
        c.links = {"lib": draw(st.sampled_from(["@out", "/etc"]))}
        c.needles = ("lib",)
    elif kind == "symlink-yaml":
        c.outside["aipc.yaml"] = yaml.safe_dump(base_spec()).encode()
        c.spec, c.links = None, {"aipc.yaml": "@out/aipc.yaml"}
        c.needles = ("aipc.yaml",)
    else:
        c.spec["inputs"][0]["files"] = ["a.npy"]
        c.links = {"a.npy": "@out/data.npy"}
        c.needles = ("a.npy",)
    c.codes = (2,)
    return c


@st.composite
def shapes(draw):
    c = Case("zero/huge shape")
    dims = draw(st.lists(st.one_of(st.integers(-3, 0), st.integers(10**4, 10**9), st.integers(1, 8)),
                         min_size=0, max_size=7))
    c.spec["inputs"][0]["shape"] = dims
    c.spec["calibration"]["samples"] = draw(st.integers(1, 64))
    c.needles = ("inputs[0].shape", "inputs", "forward")
    return c


@st.composite
def bad_bytes(draw):
    c = Case("bytes")
    text = yaml.safe_dump(base_spec()).encode()
    kind = draw(st.sampled_from(["not-utf8", "empty", "binary", "nul", "aliases", "laughs", "tags", "deep",
                                 "bom", "scalar"]))
    if kind == "not-utf8":
        pos = draw(st.integers(0, len(text)))
        bad = draw(st.binary(min_size=1, max_size=4).map(lambda b: bytes(0x80 | x for x in b)))
        c.raw = text[:pos] + bad + text[pos:]
    elif kind == "empty":
        c.raw = draw(st.sampled_from([b"", b"\n", b"   \n", b"# only a comment\n", b"---\n"]))
    elif kind == "binary":
        c.raw = draw(st.binary(min_size=1, max_size=200))
    elif kind == "nul":
        c.raw = text + b"\x00"
    elif kind == "aliases":  # a harmless, valid use: one anchor reused
        c.raw = (b"name: fuzz\nentry: model.py:build\nshape: &s [1, 3, 8, 8]\n"
                 b"inputs:\n  - {name: x, shape: *s}\noutputs: [y]\n")
    elif kind == "laughs":
        depth = draw(st.integers(5, 9))
        lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"l{i}: &l{i} [{', '.join([f'*l{i-1}'] * 10)}]" for i in range(1, depth)]
        c.raw = ("\n".join(lines) + "\n").encode()
    elif kind == "tags":
        c.raw = text + draw(st.sampled_from([b"x: !!python/object/apply:os.system ['true']\n",
                                             b"x: !!binary AAAA\n", b"x: !custom 1\n"]))
    elif kind == "deep":
        n = draw(st.integers(50, 3000))
        c.raw = b"inputs: " + b"[" * n + b"]" * n + b"\n"
    elif kind == "bom":
        c.raw = b"\xef\xbb\xbf" + text
    else:
        c.raw = draw(st.sampled_from([b"42\n", b"just a string\n", b"- a\n- b\n", b"null\n"]))
    c.needles = ("aipc.yaml",)
    return c


@st.composite
def bad_files(draw):
    c = Case("empty/binary file")
    kind = draw(st.sampled_from(["empty-model", "binary-model", "nul-model", "latin1-model", "empty-npy",
                                 "binary-npy", "pickle-npy", "npz-as-npy", "onnx-garbage", "calib-garbage",
                                 "dir-as-entry"]))
    if kind == "empty-model":
        c.files = {"model.py": b""}
        c.needles = ("build", "model.py")
    elif kind in ("binary-model", "nul-model", "latin1-model"):
        c.files = {"model.py": {"binary-model": draw(st.binary(min_size=1, max_size=64)),
                                "nul-model": model_code() + b"\x00",
                                "latin1-model": b"# caf\xe9\n" + model_code()}[kind]}
        c.needles = ("model.py",)
    elif kind in ("empty-npy", "binary-npy", "pickle-npy", "npz-as-npy"):
        import io

        import numpy as np

        buf = io.BytesIO()
        if kind == "pickle-npy":
            np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        elif kind == "npz-as-npy":
            np.savez(buf, a=np.zeros((1, 3, 8, 8), np.float32))
        data = {"empty-npy": b"", "binary-npy": draw(st.binary(max_size=64))}.get(kind, buf.getvalue())
        c.files["a.npy"] = data
        c.spec["inputs"][0]["files"] = ["a.npy"]
        c.needles = ("a.npy",)
    elif kind == "onnx-garbage":
        c.files = {"model.onnx": draw(st.binary(max_size=64))}
        del c.spec["entry"]
        c.spec["onnx"] = "model.onnx"
        c.needles = ("model.onnx",)
    elif kind == "calib-garbage":
        c.files["c.npz"] = draw(st.binary(max_size=64))
        c.spec["calibration"]["files"] = ["c.npz"]
        c.needles = ("c.npz",)
    else:
        c.files = {"model.py/x": b""}
        c.needles = ("model.py", "entry")
    return c


@st.composite
def entry_points(draw):
    c = Case("entry point misbehaves")
    exc = draw(st.sampled_from(["RuntimeError('boom')", "ValueError", "KeyError('w')", "MemoryError()",
                                "SystemExit(3)", "RecursionError()", "ImportError('nope')"]))
    kind = draw(st.sampled_from(["build-raises", "import-raises", "forward-raises", "build-returns",
                                 "forward-returns", "build-hangs", "forward-hangs", "nan", "calib-generator"]))
    if kind == "build-raises":
        c.files = {"model.py": model_code(build=f"raise {exc}")}
    elif kind == "import-raises":
        c.files = {"model.py": f"raise {exc}\n".encode()}
    elif kind == "forward-raises":
        c.files = {"model.py": model_code(forward=f"(_ for _ in ()).throw({exc})")}
    elif kind == "build-returns":
        c.files = {"model.py": model_code(build=f"return {draw(st.sampled_from(['None', '42', 'M', 'print', '[M()]']))}")}
    elif kind == "forward-returns":
        ret = draw(st.sampled_from(["None", "'text'", "()", "[]", "{'a': 1}", "x.long()", "x.bool()",
                                    "self.c(x)[..., :0]", "(self.c(x), None)", "torch.zeros(())",
                                    "{'a': self.c(x), 'b': self.c(x)}", "self.c"]))
        c.files = {"model.py": model_code(forward=ret)}
    elif kind == "build-hangs":
        c.files = {"model.py": model_code(build="import time\n    while True:\n        time.sleep(0.01)")}
        c.spec["limits"]["stage_seconds"], c.codes = 1, (1,)
    elif kind == "forward-hangs":
        c.files = {"model.py": model_code(forward="[__import__('time').sleep(0.01) for _ in iter(int, 1)]")}
        c.spec["limits"]["stage_seconds"], c.codes = 1, (1,)
    elif kind == "nan":
        c.files = {"model.py": model_code(forward=draw(st.sampled_from(["torch.log(self.c(x) - 10)",
                                                                        "self.c(x) / 0", "self.c(x) * float('nan')"])))}
        c.codes = (1,)
    else:
        ret = draw(st.sampled_from(["None", "42", "[1, 2]", "[{'x': 1}]", "iter([{'z': [1]}])", "[{'x': 'a'}]"]))
        c.files["gen.py"] = f"def gen(n):\n    return {ret}\n".encode()
        c.spec["calibration"]["generator"] = "gen.py:gen"
        c.needles = ("calibration", "gen.py")
    c.needles = c.needles or ("model.py", "entry", "forward", "build", "output")
    return c


@st.composite
def valid(draw):
    c = Case("valid")
    c.spec["inputs"][0]["shape"] = [1, 3, draw(st.integers(4, 12)), draw(st.integers(4, 12))]
    c.spec["validation"]["samples"] = draw(st.integers(1, 3))
    c.codes = (0,)
    return c


cases = st.one_of(wrong_type(), missing_or_unknown(), names_that_do_not_exist(), hostile_paths(), shapes(),
                  bad_bytes(), bad_files(), entry_points(), valid())


# -------------------------------------------------------------------------------------------- file audit
class FileAudit:
    """Every path `open` sees while armed (builtins.open, io.open_code for imports, os.open)."""

    def __init__(self):
        self.armed, self.opened = False, []
        sys.addaudithook(self._hook)  # a hook cannot be removed: it stays, disarmed, for the session

    def _hook(self, event: str, args) -> None:
        if self.armed and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(args[0]))
            self.opened.append(path)
            if os.environ.get("AIPC_FUZZ_WHO") and not path.startswith(("/tmp", sys.prefix, sys.base_prefix)):
                import traceback

                sys.__stderr__.write(f"OPEN {path}\n{''.join(traceback.format_stack(limit=14))}\n")


AUDIT = FileAudit()


def allowed_roots(case_dir: Path) -> list[Path]:
    paths = sysconfig.get_paths()
    # the stdlib's zip entry on sys.path (python3NN.zip): importlib probes it for every new import
    stdlib_zip = Path(paths["stdlib"]).parent / f"python{sys.version_info.major}{sys.version_info.minor}.zip"
    # the report's compiled-template cache (bot.report.render): jinja2's own per-user folder, never the definition's
    jinja2_cache = Path(jinja2.FileSystemBytecodeCache().directory)
    roots = [case_dir / "m", case_dir / "out", Path(bot.__file__).parent,
             Path(paths["purelib"]), Path(paths["platlib"]), Path(paths["stdlib"]), Path(paths["platstdlib"]),
             stdlib_zip, jinja2_cache]
    return sorted({Path(os.path.realpath(r)) for r in roots} | {r.absolute() for r in roots})


def outside(opened: list[str], roots: list[Path]) -> list[str]:
    bad = []
    for p in opened:
        real = Path(os.path.realpath(p))
        if not any(real == r or r in real.parents for r in roots) and not any(
                Path(p) == r or r in Path(p).parents for r in roots):
            bad.append(p)
    return bad


# ---------------------------------------------------------------------------------------------- the test
def build(case: Case, case_dir: Path) -> Path:
    folder, beside = case_dir / "m", case_dir
    folder.mkdir(parents=True)
    for name, data in case.outside.items():
        (beside / name).write_bytes(data)
    for name, data in case.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    for name, target in case.links.items():
        (folder / name).symlink_to(target.replace("@out", str(beside)))
    if case.raw is not None:
        (folder / "aipc.yaml").write_bytes(case.raw)
    elif case.spec is not None:
        text = yaml.safe_dump(case.spec, sort_keys=False, allow_unicode=True).replace("/@out", str(beside))
        (folder / "aipc.yaml").write_text(text)
    return folder


def test_fuzz_definitions_and_model_folders(tmp_path, monkeypatch):
    # the toolchain is imported before recording: its import-time probes (onnxruntime reads
    # /etc/os-release to warn about unsupported distributions) are the library's, not the bot's doing
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401

    import bot.pipeline.runner as runner

    monkeypatch.setattr(runner, "default_workflow", lambda: ["load"])
    tally: Counter = Counter()
    labels: Counter = Counter()
    violations: list[tuple[str, str]] = []
    counter = iter(range(10**9))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def run(case: Case):
        case_dir = tmp_path / f"c{next(counter)}"
        folder = build(case, case_dir)
        AUDIT.opened.clear()
        AUDIT.armed = True
        try:
            r = CliRunner().invoke(app, ["deploy", str(folder), "--out", str(case_dir / "out"), "--no-repair"])
        finally:
            AUDIT.armed = False
        text = r.output + (r.stderr if r.stderr_bytes is not None else "")
        flat = " ".join(text.split())
        tally["cases"] += 1
        tally[f"exit {r.exit_code}"] += 1
        labels[case.label] += 1
        crashed = r.exception is not None and not isinstance(r.exception, SystemExit)
        assert not crashed and "Traceback" not in text, f"{case.label}: {r.exception!r}\n{text}"
        assert r.exit_code in case.codes, f"{case.label}: exit {r.exit_code}, expected {case.codes}\n{text}"
        if r.exit_code == 2:
            assert "error:" in flat and any(n in flat for n in case.needles + (str(folder),)), \
                f"{case.label}: the message names none of {case.needles}\n{text}"
        if r.exit_code == 1:
            assert "✗" in text or "FAIL" in text, f"{case.label}: exit 1 without saying what failed\n{text}"
        bad = outside(AUDIT.opened, allowed_roots(case_dir))
        violations.extend((case.label, p) for p in bad)
        assert not bad, f"{case.label}: opened outside the allowed folders: {bad}"
        assert "EVIL IMPORTED" not in text

    run()
    report = {"cases": tally["cases"], "exit_codes": {k: v for k, v in tally.items() if k.startswith("exit")},
              "tracebacks": 0, "files_outside_allowed_roots": len(violations), "by_kind": dict(labels)}
    if os.environ.get("AIPC_FUZZ_REPORT"):
        Path(os.environ["AIPC_FUZZ_REPORT"]).write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    assert tally["cases"] >= min(EXAMPLES, 100) * 0.9  # hypothesis ran (nearly) what was asked
    assert len(labels) == 9, labels  # every kind of case was generated
