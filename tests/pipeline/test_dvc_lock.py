"""The committed dvc.lock is the result of `dvc repro` of the whole pipeline with the committed
params.yaml and code (`make lock` refreshes it). CI fails when a stage's code or params no
longer match it: `dvc repro` on a fresh clone would otherwise rerun stages nobody changed on
purpose, and a lock that names old code says nothing about what the outputs came from."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.dvc import code_changes, dvc_status, params_files


def test_committed_dvc_lock_matches_the_code_and_params(repo_root: Path) -> None:
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    lock = yaml.safe_load((repo_root / "dvc.lock").read_text(encoding="utf-8")) or {}
    problems = [f"{name}: not in dvc.lock" for name in stages if name not in lock.get("stages", {})]
    # Data deps and outputs are the pipeline's own products: absent in a fresh clone
    # ("deleted", "not in cache") and whatever the last local run made in a workspace.
    changed = code_changes(dvc_status(repo_root), params_files(repo_root))
    problems += [f"{name}: {what}" for name, found in changed.items() for what in found]
    assert not problems, (
        "dvc.lock does not match the code and params.yaml: run `make lock` and commit dvc.lock "
        "with the change (dvc status says):\n  " + "\n  ".join(problems)
    )
