"""Real DVC on a copy of the repository: editing a module a stage runs makes `dvc status`
report that stage changed (and no stage whose deps do not cover the module)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.dvc import code_changes, dvc, dvc_status, fresh_copy, params_files
from tests.support.stage_modules import Stage, covering_dep, load_stages, stage_files

CODE = ("ml/", "expectations/")


def placeholder(path: Path) -> None:
    """A stand-in for a data dep or output (a file if the name has a suffix, else a folder)."""
    if path.exists():
        return
    if path.suffix:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
    else:
        path.mkdir(parents=True, exist_ok=True)
        (path / "placeholder.txt").write_text("stand-in\n")


def _paths(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else str(e) for e in entries]


@pytest.fixture(scope="module")
def recorded(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy whose dvc.lock records the current code and params (stand-in data, no repro)."""
    copy = fresh_copy(repo_root, tmp_path_factory.mktemp("deps") / "repo")
    (copy / "dvc.lock").unlink(missing_ok=True)
    document = yaml.safe_load((copy / "dvc.yaml").read_text(encoding="utf-8"))
    for spec in document["stages"].values():
        for rel in _paths(spec.get("deps", [])) + _paths(
            spec.get("outs", []) + spec.get("metrics", [])
        ):
            placeholder(copy / rel)
    dvc(copy, "commit", "--force", "--quiet")
    return copy


def sample_files(stages: dict[str, Stage], root: Path) -> list[Path]:
    """One file per code dep of each stage, from the files the stage runs (or the dep itself)."""
    picked: set[Path] = set()
    for stage in stages.values():
        runs = sorted(stage_files(stage, root), key=lambda p: (p.name == "__init__.py", p))
        for dep in stage.deps:
            if not dep.startswith(CODE):
                continue
            inside = [p for p in runs if covering_dep(p, [dep])]
            picked.add(inside[0] if inside else Path(dep))
    return sorted(picked)


def batches(files: list[Path], stages: dict[str, Stage]) -> list[list[Path]]:
    """Files edited together: no two of a batch fall under the same dep of the same stage, so
    each reported dep is the doing of exactly one edit."""
    groups: list[tuple[list[Path], set[tuple[str, str]]]] = []
    for path in files:
        keys = {
            (name, dep)
            for name, stage in stages.items()
            if (dep := covering_dep(path, stage.deps)) is not None
        }
        for members, taken in groups:
            if not keys & taken:
                members.append(path)
                taken.update(keys)
                break
        else:
            groups.append(([path], keys))
    return [members for members, _ in groups]


def test_a_code_edit_reruns_exactly_the_stages_whose_deps_cover_it(recorded: Path) -> None:
    params = params_files(recorded)
    before = code_changes(dvc_status(recorded), params)
    assert before == {}, f"changed before any edit: {before}"

    stages = load_stages(recorded)
    files = sample_files(stages, recorded)
    assert len(files) >= 10, files
    failures: list[str] = []
    for batch in batches(files, stages):
        originals = {p: (recorded / p).read_bytes() for p in batch}
        try:
            for path in batch:
                with (recorded / path).open("a", encoding="utf-8") as handle:
                    handle.write("\n# edited by test_dvc_code_deps\n")
            changed = code_changes(dvc_status(recorded), params)
        finally:
            for path, data in originals.items():
                (recorded / path).write_bytes(data)
        for name, stage in stages.items():
            expected = {
                f"{dep} (modified)": path
                for path in batch
                if (dep := covering_dep(path, stage.deps)) is not None
            }
            reported = set(changed.get(name, []))
            failures += [
                f"{name}: editing {path} did not change it ({key} not reported)"
                for key, path in expected.items()
                if key not in reported
            ]
            failures += [f"{name}: reported {what}" for what in reported - set(expected)]
    assert not failures, "\n".join(failures)
    assert code_changes(dvc_status(recorded), params) == {}
