"""The architecture as written in pyproject.toml's import-linter contracts: packages layered by
responsibility, no import cycles. Checked with the real tool (``lint-imports``) on this tree, and
on a copy where one import breaks each contract (so the check can fail)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_FUNCTION_LINES = 80
# A function may be longer only with this marker and a reason on the line above its `def`.
LONG_FUNCTION_MARKER = "# long function:"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # import-linter puts the working directory first on sys.path: it analyses root/ml.
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_contracts_hold() -> None:
    proc = lint_imports(REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "ml", tmp_path / "ml", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, line: str) -> None:
    text = module.read_text(encoding="utf-8")
    head, sep, rest = text.partition("from __future__ import annotations\n")
    module.write_text(head + sep + line + "\n" + rest, encoding="utf-8")


def test_a_cycle_between_sibling_modules_breaks_the_build(tree_copy: Path) -> None:
    # train imports model; model importing train closes a cycle.
    add_import(
        tree_copy / "ml/models/recommender/model.py",
        "import ml.models.recommender.train  # noqa",
    )
    proc = lint_imports(tree_copy)
    assert proc.returncode != 0
    assert "No import cycles" in proc.stdout and "BROKEN" in proc.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_build(tree_copy: Path) -> None:
    add_import(tree_copy / "ml/core/metrics.py", "import ml.release.registry  # noqa")
    proc = lint_imports(tree_copy)
    assert proc.returncode != 0
    assert "ml.core.metrics -> ml.release.registry" in proc.stdout


def long_functions(root: Path) -> list[str]:
    """Functions in ``root/ml`` over MAX_FUNCTION_LINES without a written reason."""
    found = []
    for path in sorted((root / "ml").rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            reason = lines[first - 2].strip() if first >= 2 else ""
            if length > MAX_FUNCTION_LINES and not reason.startswith(LONG_FUNCTION_MARKER):
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_80_lines_without_a_reason(tmp_path: Path) -> None:
    assert long_functions(REPO_ROOT) == []
    # The check sees a long function, and accepts it with a reason.
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "m.py").write_text(f"def f():\n{body}\n")
    assert long_functions(tmp_path) == ["ml/m.py:1 f (81 lines)"]
    (tmp_path / "ml" / "m.py").write_text(f"{LONG_FUNCTION_MARKER} a table\ndef f():\n{body}\n")
    assert long_functions(tmp_path) == []
