"""Heavy libraries are imported inside the functions that need them (so a cached run never pays for them);
this checks, statically, that every function using one of those names has it bound in reach: its own
import, an enclosing function's, or a module-level import. A function that lost its import (a merge that
kept a new caller and the deferral both) fails here instead of with a NameError mid-deploy."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY_NAMES = {"onnx", "ort", "onnxruntime", "ir", "onnx_ir", "torch", "onnxslim", "numpy_helper", "helper",
               "version_converter", "pattern", "np", "plt", "matplotlib"}


def _bound_in(node: ast.AST) -> set[str]:
    """Names a function binds itself (imports, assignments, arguments), not counting nested functions."""
    out: set[str] = set()
    stack = list(ast.iter_child_nodes(node))
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            out |= {a.asname or a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
            continue  # its own scope
        stack.extend(ast.iter_child_nodes(n))
    return out


def _annotations(tree: ast.AST) -> set[int]:
    """Nodes inside annotations: strings under `from __future__ import annotations`, never evaluated."""
    ids: set[int] = set()
    for n in ast.walk(tree):
        parts = []
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = n.args
            parts = [x.annotation for x in a.posonlyargs + a.args + a.kwonlyargs if x.annotation]
            parts += [x.annotation for x in (a.vararg, a.kwarg) if x is not None and x.annotation]
            parts += [n.returns] if n.returns else []
        elif isinstance(n, ast.AnnAssign):
            parts = [n.annotation]
        for p in parts:
            ids |= {id(x) for x in ast.walk(p)}
    return ids


def unbound_heavy_names(source: str) -> list[tuple[int, str, str]]:
    tree = ast.parse(source)
    lazy = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
               any(a.name == "annotations" for a in n.names) for n in tree.body)
    skip = _annotations(tree) if lazy else set()
    module = _bound_in(tree)
    found = []

    def visit(node: ast.AST, reach: set[str], where: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                name = getattr(child, "name", "<lambda>")
                visit(child, reach | _bound_in(child), name)
            elif isinstance(child, ast.ClassDef):
                visit(child, reach | _bound_in(child), child.name)
            else:
                if (isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) and child.id in HEAVY_NAMES
                        and child.id not in reach and id(child) not in skip and not hasattr(builtins, child.id)):
                    found.append((child.lineno, child.id, where))
                visit(child, reach, where)

    visit(tree, module, "<module>")
    return found


def test_every_use_of_a_heavy_library_has_its_import_in_reach():
    problems = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for line, name, where in unbound_heavy_names(path.read_text()):
            problems.append(f"{path.relative_to(ROOT)}:{line}: {name!r} used in {where} but never imported there")
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_lost_deferred_import():
    lost = "from __future__ import annotations\n\ndef f(m: onnx.ModelProto):\n    return onnx.load(m)\n"
    kept = "from __future__ import annotations\n\ndef f(m: onnx.ModelProto):\n    import onnx\n\n    return onnx.load(m)\n"
    nested = "def f():\n    import torch\n\n    def g():\n        return torch.zeros(1)\n    return g\n"
    assert unbound_heavy_names(lost) == [(4, "onnx", "f")]
    assert unbound_heavy_names(kept) == [] and unbound_heavy_names(nested) == []
