"""The house's shape, checked: three layers that import only downwards, short functions, scripts without path hacks.

Layer 0 ``core`` (foundation), layer 1 ``models``, ``metrics``, ``reports``, layer 2 ``benchmark`` (CLI and
orchestration) and ``speed`` (benchmarks beside it). Every import counts, including the ones inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"core": 0, "models": 1, "metrics": 1, "reports": 1, "benchmark": 2, "speed": 2}
MAX_FUNCTION_LINES = 100


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every absolute import in ``tree``, at any depth."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def layer_violations(root: Path) -> list[str]:
    """Every import of a higher layer's package from a lower one, as ``file:line: a (layer) imports b (layer)``."""
    bad = []
    for package, level in LAYERS.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, module in imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
                target = module.split(".")[0]
                if LAYERS.get(target, -1) > level:
                    rel = path.relative_to(root)
                    bad.append(f"{rel}:{line}: {package} (layer {level}) imports {module} (layer {LAYERS[target]})")
    return bad


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    bad = []
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > limit:
                        bad.append(f"{path.relative_to(root)}:{node.lineno} {node.name} has {n} lines")
    return bad


def test_every_layer_exists():
    for package in LAYERS:
        assert (ROOT / package / "__init__.py").is_file(), package


def test_lower_layers_never_import_higher_ones():
    assert layer_violations(ROOT) == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    for package in LAYERS:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "core" / "ok.py").write_text("import numpy\nfrom core import errors\n")
    (tmp_path / "metrics" / "lazy.py").write_text("def f():\n    from benchmark.pipeline import evaluate\n")
    (tmp_path / "core" / "bad.py").write_text("from models.gans import registry\n")
    found = layer_violations(tmp_path)
    assert len(found) == 2
    assert found[0].startswith("core/bad.py:1: core (layer 0) imports models.gans")
    assert found[1].startswith("metrics/lazy.py:2: metrics (layer 1) imports benchmark.pipeline")


def test_no_function_over_the_limit():
    assert long_functions(ROOT) == []


def test_the_length_check_sees_a_long_function(tmp_path):
    for package in LAYERS:
        (tmp_path / package).mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "models" / "long.py").write_text(f"def long():\n{body}")
    (tmp_path / "models" / "short.py").write_text(f"def short():\n{body[: -len('    x99 = 99')-1]}")
    assert long_functions(tmp_path) == [f"models/long.py:1 long has {MAX_FUNCTION_LINES + 1} lines"]


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_no_sys_path_edits(package):
    """Modules import each other as packages; ``python -m speed.bench_fid`` works from the repository root."""
    edits = [
        f"{p.relative_to(ROOT)}"
        for p in (ROOT / package).rglob("*.py")
        if "sys.path.insert" in p.read_text(encoding="utf-8") or "sys.path.append" in p.read_text(encoding="utf-8")
    ]
    assert edits == []
