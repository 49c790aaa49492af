"""voxelflex.structure imports only the layers below it (frame, errors, atomic, packing, inputs)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "voxelflex" / "structure"
ALLOWED = ("voxelflex.frame", "voxelflex.errors", "voxelflex.atomic", "voxelflex.packing",
           "voxelflex.inputs", "voxelflex.structure")  # fmt: skip


def test_structure_imports_only_lower_layers():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                names = [node.module or ""]
            for name in names:
                if name == "voxelflex" or name.startswith("voxelflex."):
                    assert name.startswith(ALLOWED), f"{path.name} imports {name}"
