"""The import graph runs one way (docs/architecture.md), and imports are local only in the CLI.

cli → demo → analysis → engine → sources | models → index | datasets → structure → inputs → base
(errors, frame, config, registry, ...). A module may import its own package and lower layers;
``sources`` and ``models`` sit side by side and do not import each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import voxelflex

PACKAGE = Path(voxelflex.__file__).parent
LAYERS = {
    "inputs": 1,
    "structure": 2,
    "index": 3,
    "datasets": 3,
    "sources": 4,
    "models": 4,
    "engine": 5,
    "analysis": 6,
    "demo": 7,
    "cli": 8,
}
# Anything else is a base module (errors, frame, config, registry, quantities, paths, ...):
# importable from every layer, importing no layer.


def _unit(module: str) -> str:
    """``voxelflex.sources.shards.reader`` → ``sources``; a top-level module → itself
    (``python -m voxelflex`` is the CLI)."""
    parts = module.split(".")
    unit = parts[1] if len(parts) > 1 else ""
    return "cli" if unit == "__main__" else unit


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        yield name, path, ast.parse(path.read_text())


def _imports(tree: ast.AST):
    """(imported voxelflex module, line, is_local) for every import in ``tree``."""
    type_checking = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            type_checking.update(id(n) for n in ast.walk(node))
    local = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            local.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name == "voxelflex" or name.startswith("voxelflex."):
                yield name, node.lineno, id(node) in local


def test_no_import_runs_upward_between_layers():
    wrong = []
    for name, path, tree in _modules():
        unit = _unit(name)
        for target, line, _ in _imports(tree):
            other = _unit(target)
            if other == unit or other not in LAYERS:
                continue  # its own package, or a base module (importable from anywhere)
            if unit not in LAYERS or LAYERS[other] >= LAYERS[unit]:
                wrong.append(f"{path}:{line} {name} -> {target}")
    assert not wrong, "imports that run upward or sideways:\n" + "\n".join(wrong)


def test_imports_are_local_only_in_the_cli():
    """The one rule: a command imports the library inside its function, so that
    `voxelflex --help` does not load torch, h5py and duckdb; everywhere else imports are at the
    top of the module (``if TYPE_CHECKING:`` imports for annotations aside)."""
    local = [
        f"{path}:{line} {name} -> {target}"
        for name, path, tree in _modules()
        if _unit(name) != "cli"
        for target, line, is_local in _imports(tree)
        if is_local
    ]
    assert not local, "local imports outside voxelflex/cli:\n" + "\n".join(local)


def test_the_cli_starts_without_the_heavy_libraries():
    code = (
        "import sys, voxelflex.cli.main; "
        "print(sorted(m for m in ('torch', 'h5py', 'duckdb', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
