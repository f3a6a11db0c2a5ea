"""dvc.yaml lists, for each stage, the code its command runs (tests/support/stage_modules.py
follows the imports); nothing more, nothing less."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.stage_modules import (
    covering_dep,
    load_stages,
    reachable_files,
    stage_files,
    uncovered,
)

STAGES = load_stages()


def test_every_stage_of_the_pipeline_is_checked() -> None:
    assert {"ingest", "validate", "train_intent", "evaluate_recommender"} <= set(STAGES)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_module_a_stage_runs_is_one_of_its_deps(name: str) -> None:
    stage = STAGES[name]
    missing = uncovered(stage)
    assert not missing, (
        f"dvc.yaml stage {name} (python -m ml {' '.join(stage.argv)}) runs these files but no dep "
        "covers them, so editing them would not rerun it; add the file, or its package folder, "
        "to the stage's deps:\n  " + "\n  ".join(str(p) for p in missing)
    )


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_code_dep_of_a_stage_is_code_it_runs(name: str) -> None:
    stage = STAGES[name]
    files = stage_files(stage)
    idle = [
        dep
        for dep in stage.deps
        if dep.startswith("ml/") and not any(covering_dep(p, [dep]) for p in files)
    ]
    assert not idle, (
        f"dvc.yaml stage {name} lists code deps it never runs (a change there reruns it for "
        f"nothing); remove them: {idle}"
    )


def test_validate_depends_on_every_expectation_suite(repo_root: Path) -> None:
    suites = sorted(p.relative_to(repo_root) for p in (repo_root / "expectations").glob("*.json"))
    assert suites
    deps = STAGES["validate"].deps
    assert [str(p) for p in suites if covering_dep(p, deps) is None] == []


def test_imports_are_followed_in_functions_but_not_under_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "ml"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""doc"""\n')
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "entry.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from ml.sub import helper\n"
        "if TYPE_CHECKING:\n"
        "    from ml import typing_only\n"
        "def run():\n"
        "    from . import lazy\n"
        "    import importlib\n"
        "    importlib.import_module('ml.sub.named')\n"
    )
    for name in ("sub/helper.py", "typing_only.py", "lazy.py", "sub/named.py", "unused.py"):
        (pkg / name).write_text("import os\n")
    (pkg / "lazy.py").write_text("from .sub.deep import x\n")
    (pkg / "sub" / "deep.py").write_text("x = 1\n")
    found = {p.as_posix() for p in reachable_files(["ml.entry"], tmp_path)}
    assert found == {
        "ml/__init__.py",
        "ml/entry.py",
        "ml/sub/__init__.py",
        "ml/sub/helper.py",
        "ml/lazy.py",
        "ml/sub/deep.py",
        "ml/sub/named.py",
    }
