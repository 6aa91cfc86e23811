"""The package layering of spg_lib: imports only point down, and no module imports another package's private names.

Ranks (a package may import only packages of a lower rank): the foundation (io, progress, then config), models,
decoding and storage, algos, tasks, registry, training, the stage and benchmark code (pipeline, bench), the CLI.
Imports inside function bodies count too, so a cycle cannot hide there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "spg_lib"
RANK = {
    "io": 0, "progress": 0, "config": 1,
    "models": 2, "decoding": 3, "storage": 3, "algos": 4,
    "tasks": 5, "registry": 6, "training": 7,
    "pipeline": 8, "bench": 8.5, "kubeflow": 8.5, "cli": 9, "__main__": 10, "__init__": 10,
}


def _package(module: str) -> str:
    """spg_lib.training.trainer -> training; spg_lib.io -> io."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every spg_lib import in `path`, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spg_lib") and not node.level:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, []) for a in node.names if a.name.startswith("spg_lib"))
    return out


FILES = sorted(ROOT.rglob("*.py"))


def test_every_package_has_a_rank():
    packages = {_package(".".join(p.relative_to(ROOT.parent).with_suffix("").parts)) for p in FILES}
    assert packages <= set(RANK), sorted(packages - set(RANK))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_and_stay_public(path):
    me = _package(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
    bad = []
    for line, module, names in _imports(path):
        target = _package(module)
        if target == me:
            continue
        if RANK[target] >= RANK[me]:
            bad.append(f"{path.name}:{line}: {me} (rank {RANK[me]}) imports {module} (rank {RANK[target]})")
        private = [n for n in names if n.startswith("_")] + [p for p in module.split(".")[2:] if p.startswith("_")]
        if private:
            bad.append(f"{path.name}:{line}: private {private} of {module}")
    assert not bad, "\n".join(bad)


def test_the_check_sees_function_level_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from spg_lib.training.tracking import _hidden\n")
    assert _imports(src) == [(2, "spg_lib.training.tracking", ["_hidden"])]
