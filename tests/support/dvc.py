"""DVC projects for tests: run `dvc` with this venv, and a git + DVC repo holding the intent
preprocess stage (the stage the retrain DAG reproduces and syncs)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

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
