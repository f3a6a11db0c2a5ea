"""Data versions on the DVC remote: pull before preprocessing, push after training, restore later.

The retrain DAGs preprocess with ``dvc repro --single-item <stage>`` (SHOPFLOW_PREPROCESS_MODE
=dvc), so dvc.lock and the DVC cache record what each model learnt from. This module moves that
record to and from the DVC remote (S3, MinIO, a local folder):

* :func:`pull_stage` before preprocessing: ``dvc fetch`` the stage's recorded outputs into the
  cache (it never touches the workspace), then check out only the outputs the workspace lacks (a
  fresh worker). Outputs that differ from dvc.lock are left alone: the stage is about to
  regenerate them, and a forced checkout would delete files nobody cached. A version that
  dvc.lock names but nobody pushed (a fresh clone's dvc.lock from git) is not in the cache after
  the fetch: it is not checked out (nothing is wrong) and preprocessing regenerates it.
* :func:`push_stage` after training: ``dvc push`` the stage's outputs and return the stage's
  dvc.lock entry, which the DAG stores as a tag on the new model version.
* :func:`restore_stage`: write such an entry back into dvc.lock and ``dvc pull`` it, which brings
  back the exact bytes a model version was trained on (``python -m ml restore-data``).
* :func:`record_stages` after the DAG trained and evaluated with the stages' own commands
  (``python -m ml train|evaluate <family>``) but outside ``dvc repro``: ``dvc commit`` them, so
  dvc.lock says they are up to date and ``dvc repro`` does not redo them; not when the run's
  overrides changed a param the stages declare (DVC would run them with params.yaml's values).

Credentials are DVC's own: the environment (AWS_*) or ``.dvc/config.local``, never the repo.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ml.core.errors import ConfigError, InputError, ShopflowError

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# Model-version tag holding the preprocess stage's dvc.lock entry (deps and outs with hashes).
DATA_VERSION_TAG = "shopflow.dvc_stage_lock"
# The stage whose outputs a family's model learns from (dvc.yaml).
STAGE_OF_FAMILY = {"intent": "preprocess_intent", "recommender": "preprocess_recsys"}


class DataSyncError(ShopflowError):
    """``dvc fetch/push/pull`` failed: the remote, its credentials or the cache is not usable."""

    exit_code = 8


def run_dvc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dvc <args>`` in ``project`` with this interpreter; the output is captured."""
    env = dict(os.environ)
    # `python -m ml` inside a stage must be this interpreter (the venv), not whatever is on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _checked(project: Path, what: str, *args: str) -> str:
    proc = run_dvc(project, *args)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise DataSyncError(
            f"`dvc {' '.join(args)}` failed in {project} (exit {proc.returncode}) while {what}:\n"
            f"{output[-2000:]}"
        )
    return output


def default_remote(project: Path) -> str | None:
    """DVC's default remote (``core.remote``), or None when none is configured."""
    proc = run_dvc(project, "remote", "default")
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name else None


def remote_names(project: Path) -> list[str]:
    proc = run_dvc(project, "remote", "list")
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def resolve_remote(project: Path, remote: str | None) -> str | None:
    """The remote to sync with: ``remote`` if given (it must exist), else DVC's default."""
    if remote:
        known = remote_names(project)
        if remote not in known:
            raise ConfigError(
                f"DVC remote {remote!r} (SHOPFLOW_DVC_REMOTE) is not configured in {project}; "
                f"known remotes: {known or 'none'} (add one with `dvc remote add --local`)"
            )
        return remote
    return default_remote(project)


def stage_lock_entry(project: Path, stage: str) -> dict[str, Any]:
    """The stage's entry in dvc.lock (cmd, deps, params, outs with their hashes)."""
    lock = project / "dvc.lock"
    if not lock.is_file():
        raise InputError(f"{lock} does not exist: run `dvc repro {stage}` first")
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    if stage not in stages:
        raise InputError(f"{lock} has no entry for stage {stage!r}: run `dvc repro {stage}`")
    return dict(stages[stage])


def _remote_args(remote: str | None) -> list[str]:
    return ["--remote", remote] if remote else []


def pull_stage(project: Path, stage: str, remote: str | None = None) -> dict[str, Any]:
    """Fetch the stage's recorded outputs from the remote; check out those the workspace lacks."""
    remote = resolve_remote(project, remote)
    if remote is None:
        log.info("no DVC remote configured in %s: nothing to pull", project)
        return {"stage": stage, "remote": None, "restored": []}
    try:
        outs = [str(o["path"]) for o in stage_lock_entry(project, stage).get("outs", [])]
    except InputError:
        log.info("stage %s not in dvc.lock yet (first run): nothing to pull", stage)
        return {"stage": stage, "remote": remote, "restored": []}
    fetched = _checked(project, f"fetching {stage}", "fetch", *_remote_args(remote), stage)
    log.info("dvc fetch %s from %s: %s", stage, remote, fetched.splitlines()[-1:] or "")
    missing = [out for out in outs if not (project / out).exists()]
    if not missing:
        return {"stage": stage, "remote": remote, "restored": []}
    # What the fetch could not bring: a version dvc.lock names but nobody pushed (e.g. a fresh
    # clone's dvc.lock from git). Nothing to restore, and the stage is about to regenerate it;
    # checking it out would only make DVC print "ERROR: Checkout failed".
    absent = not_in_cache(project, missing)
    present = [out for out in missing if out not in absent]
    if present:
        # In the cache now: a failure here is real (a partial version, the workspace).
        _checked(project, f"checking out {stage}", "checkout", *present)
    result: dict[str, Any] = {"stage": stage, "remote": remote, "restored": present}
    if absent:
        log.info(
            "%s: the version dvc.lock names is not on DVC remote %s (never pushed); "
            "preprocessing regenerates it",
            ", ".join(absent),
            remote,
        )
        result["not_on_remote"] = absent
    return result


def not_in_cache(project: Path, outs: list[str]) -> list[str]:
    """Those of ``outs`` whose recorded version is not in the DVC cache (``dvc data status``)."""
    args = ("data", "status", "--json", *outs)
    proc = run_dvc(project, *args)
    if proc.returncode != 0:
        raise DataSyncError(
            f"`dvc {' '.join(args)}` failed in {project} (exit {proc.returncode}):\n"
            f"{(proc.stdout + proc.stderr).strip()[-2000:]}"
        )
    report = json.loads(proc.stdout or "{}")
    absent = {str(path).rstrip("/") for path in report.get("not_in_cache", [])}
    return [out for out in outs if out.rstrip("/") in absent]


def push_stage(project: Path, stage: str, remote: str | None = None) -> dict[str, Any]:
    """Push the stage's outputs; returns the dvc.lock entry that names exactly what was pushed."""
    remote = resolve_remote(project, remote)
    entry = stage_lock_entry(project, stage)
    if remote is None:
        raise ConfigError(
            f"no DVC remote configured in {project}: add one (`dvc remote add --local --default "
            "<name> s3://bucket/path`) or set SHOPFLOW_DVC_REMOTE"
        )
    output = _checked(project, f"pushing {stage}", "push", *_remote_args(remote), stage)
    log.info("dvc push %s to %s: %s", stage, remote, output.splitlines()[-1:] or "")
    return {"stage": stage, "remote": remote, "lock": entry}


def restore_stage(
    project: Path, stage: str, entry: dict[str, Any], remote: str | None = None
) -> dict[str, Any]:
    """Put ``entry`` into dvc.lock as the stage's record and pull those exact outputs."""
    lock = project / "dvc.lock"
    document = yaml.safe_load(lock.read_text(encoding="utf-8")) if lock.is_file() else None
    document = document or {"schema": "2.0", "stages": {}}
    document.setdefault("stages", {})[stage] = entry
    tmp = lock.with_name(".dvc.lock.tmp")
    tmp.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    tmp.replace(lock)
    remote = resolve_remote(project, remote)
    # --force: the workspace copy is replaced by the version asked for (it is in the cache or
    # on the remote, the state being replaced is usually also recorded there).
    _checked(project, f"restoring {stage}", "pull", "--force", *_remote_args(remote), stage)
    outs = [str(o["path"]) for o in entry.get("outs", [])]
    return {"stage": stage, "remote": remote, "restored": outs}


def record_stages(
    project: Path,
    stages: Sequence[str],
    params_file: str | Path = "params.yaml",
    overrides: dict[str, Any] | list[str] | None = None,
) -> dict[str, Any]:
    """Record ``stages`` as up to date in dvc.lock (``dvc commit --force``) after their commands
    ran outside ``dvc repro`` (the retrain DAG's train and evaluate tasks run the same steps).

    Only when the run computed what ``dvc repro`` would have: the effective values
    (``params_file`` + ``overrides``) of every param the stages declare, and of ``paths`` (their
    deps and outs), equal params.yaml's. Otherwise nothing is recorded and one line names the
    overridden keys: the stages stay out of date and ``dvc repro`` redoes them with params.yaml.
    Stages that dvc.yaml does not define are left out.
    """
    from ml.core.config import load_params

    dvc_yaml = project / "dvc.yaml"
    document = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) if dvc_yaml.is_file() else {}
    defined = (document or {}).get("stages", {})
    known = [stage for stage in stages if stage in defined]
    result: dict[str, Any] = {"stages": known, "recorded": []}
    if len(known) < len(stages):
        result["not_in_dvc_yaml"] = [stage for stage in stages if stage not in defined]
        log.info("not stages of %s, nothing to record: %s", dvc_yaml, result["not_in_dvc_yaml"])
    if not known:
        return result
    keys, other_files = {"paths"}, set()
    for stage in known:
        for entry in defined[stage].get("params") or []:
            if isinstance(entry, str):
                keys.add(entry)
                continue
            for file, names in dict(entry).items():
                if file == "params.yaml":
                    keys.update(names or [""])
                else:
                    other_files.add(str(file))
    with contextlib.chdir(project):
        effective = load_params(params_file, overrides or []).model_dump(mode="json")
        declared = load_params("params.yaml").model_dump(mode="json")
    changed = sorted(
        {
            diff
            for key in keys
            for diff in _differences(_at(effective, key), _at(declared, key), key)
        }
    )
    reasons = [f"this run overrode {', '.join(changed)}"] if changed else []
    reasons += [f"they declare params of {file}" for file in sorted(other_files)]
    if reasons:
        result["out_of_date"] = (
            f"dvc.lock: {', '.join(known)} stay out of date ({'; '.join(reasons)}): "
            "`dvc repro` reruns them with params.yaml"
        )
        log.info("%s", result["out_of_date"])
        return result
    _checked(
        project, "recording the run in dvc.lock", "--wait-for-lock", "commit", "--force", *known
    )
    log.info("dvc.lock records %s as up to date", ", ".join(known))
    result["recorded"] = known
    return result


def _at(tree: Any, dotted: str) -> Any:
    for part in filter(None, dotted.split(".")):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _differences(left: Any, right: Any, prefix: str) -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(left, dict) and isinstance(right, dict):
        return [
            diff
            for key in sorted(set(left) | set(right))
            for diff in _differences(
                left.get(key), right.get(key), f"{prefix}.{key}" if prefix else str(key)
            )
        ]
    return [] if left == right else [prefix]
