"""DVC projects for tests: run `dvc` with this venv, a git + DVC repo holding the intent
preprocess stage (the stage the retrain DAG reproduces and syncs), a fresh copy of this
repository, and which code/params deps `dvc status` reports changed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

INTENT_STAGE = "preprocess_intent"
INTENT_OUT = Path("data/processed/intent")


def digest_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path: byte-for-byte comparisons."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def dvc(project: Path, *args: str) -> str:
    """``dvc <args>`` in ``project`` with this interpreter's venv first on PATH (its stages
    run ``python -m ml``); fails the test with DVC's output on a non-zero exit."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def land_validated_days(project: Path, first_day: int, days: int) -> None:
    """Synthetic utterance partitions straight into data/validated (validation is tested
    elsewhere; here only their bytes matter)."""
    from ml.core.config.data import GeneratorConfig
    from ml.data.synthetic import generate_world

    landing = project / "data" / "landing"
    generate_world(
        GeneratorConfig(n_items=60, n_users=40, utterances_per_day=150, days=days),
        landing,
        first_day=first_day,
        n_days=days,
    )
    target = project / "data" / "validated" / "utterances"
    shutil.copytree(landing / "utterances", target, dirs_exist_ok=True)


def init_intent_dvc_project(project: Path, remote_url: str, endpoint: str | None = None) -> Path:
    """Make ``project`` a git + DVC repo with the intent preprocess stage and the default remote
    ``s3`` at ``remote_url`` (``endpoint`` in .dvc/config.local, if given). params.yaml gets
    the stage's params section (DVC records it, so it must be spelt out)."""
    project.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    dvc(project, "init", "-q")
    dvc(project, "remote", "add", "--local", "--default", "s3", remote_url)
    if endpoint:
        dvc(project, "remote", "modify", "--local", "s3", "endpointurl", endpoint)
    stage = {
        "cmd": "python -m ml preprocess intent",
        "deps": ["data/validated/utterances"],
        "params": ["preprocess.intent"],
        "outs": [str(INTENT_OUT)],
    }
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {INTENT_STAGE: stage}}))
    params_file = project / "params.yaml"
    params = yaml.safe_load(params_file.read_text()) if params_file.is_file() else {}
    params.setdefault("preprocess", {})["intent"] = {"lowercase": False}
    params_file.write_text(yaml.safe_dump(params))
    return project


def fresh_copy(repo_root: Path, dest: Path) -> Path:
    """The repository's tracked and not-ignored files, committed in a new git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=repo_root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = repo_root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


# Deps that are code or reviewed configuration: the committed dvc.lock must match them.
# Everything else (data, models, reports) is produced by the pipeline and absent from a clone.
CODE_DEP_PREFIXES = ("ml/", "expectations/")


def dvc_status(project: Path, *targets: str) -> dict[str, Any]:
    """``dvc status --json [targets]`` in ``project`` as a dict (stage -> list of changes)."""
    out = dvc(project, "status", "--json", *targets).strip()
    return dict(json.loads(out)) if out else {}


def params_files(project: Path) -> set[str]:
    """The params files dvc.yaml's stages declare (params.yaml unless a stage names another)."""
    files = {"params.yaml"}
    document = yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))
    for spec in document["stages"].values():
        for entry in spec.get("params", []):
            if isinstance(entry, dict):
                files.update(str(name) for name in entry)
    return files


def code_changes(status: dict[str, Any], params: set[str]) -> dict[str, list[str]]:
    """Per stage, what ``dvc status --json`` reports changed among its code deps (under ml/ or
    expectations/), its params (``params`` files) and its command: ``"ml/models/intent
    (modified)"``, ``"params.yaml: intent.train.epochs (modified)"``, ``"changed command"``. Data
    deps and outputs are left out (in a fresh clone they are missing: "deleted", "not in cache")."""
    found: dict[str, list[str]] = {}
    for stage, entries in status.items():
        for entry in entries:
            if isinstance(entry, str):
                if entry == "changed command":
                    found.setdefault(stage, []).append(entry)
                continue
            for path, state in (entry.get("changed deps") or {}).items():
                if path in params and isinstance(state, dict):
                    found.setdefault(stage, []).extend(
                        f"{path}: {key} ({value})" for key, value in state.items()
                    )
                elif path in params or path.startswith(CODE_DEP_PREFIXES):
                    found.setdefault(stage, []).append(f"{path} ({state})")
    return found
