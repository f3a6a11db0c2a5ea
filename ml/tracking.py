"""MLflow set-up and lineage: what every training run records about where it came from."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from ml.config import MlflowConfig, Params


# mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI for subprocesses; remember the values
# that came from us, so a later call in the same process is not mistaken for a user override.
_URIS_SET_BY_US: set[str] = set()


def resolve_tracking_uri(cfg: MlflowConfig) -> tuple[str, str]:
    """(tracking URI, registry URI): ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` set by
    the deployment win over params.yaml, so an Airflow worker or CI can point every step at a
    tracking server without editing the configuration."""

    def from_env(name: str) -> str | None:
        value = os.environ.get(name)
        return value if value and value not in _URIS_SET_BY_US else None

    tracking_uri = from_env("MLFLOW_TRACKING_URI") or cfg.tracking_uri
    return tracking_uri, from_env("MLFLOW_REGISTRY_URI") or tracking_uri


def activate_tracking_uri(cfg: MlflowConfig) -> tuple[str, str]:
    """Point the mlflow module at the resolved store; returns (tracking URI, registry URI)."""
    import mlflow

    tracking_uri, registry_uri = resolve_tracking_uri(cfg)
    from_environment = {
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    }
    _URIS_SET_BY_US.update({tracking_uri, registry_uri} - from_environment)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    return tracking_uri, registry_uri


def configure_mlflow(cfg: MlflowConfig, experiment: str) -> str:
    """Point MLflow at the configured store and select (creating if needed) an experiment.

    Returns the experiment id.
    """
    import mlflow

    activate_tracking_uri(cfg)
    existing = mlflow.get_experiment_by_name(experiment)
    if existing is not None:
        mlflow.set_experiment(experiment_id=existing.experiment_id)
        return str(existing.experiment_id)
    experiment_id = mlflow.create_experiment(experiment, artifact_location=cfg.artifact_location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


def git_commit(cwd: str | Path = ".") -> str:
    """The current commit (``-dirty`` if tracked files changed); ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(path: str | Path, lock_file: str | Path = "dvc.lock") -> str:
    """The DVC hash of ``path`` when dvc.lock records it, else an md5 computed the same way
    for a file (content md5) or a stable md5 over a folder's (relative path, md5) pairs."""
    path = Path(path)
    lock = Path(lock_file)
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []) + stage.get("deps", []):
                if Path(out.get("path", "")) == path and out.get("md5"):
                    return str(out["md5"])
    if path.is_file():
        return _md5_file(path)
    if path.is_dir():
        digest = hashlib.md5(usedforsecurity=False)
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{child.relative_to(path).as_posix()}:{_md5_file(child)}\n".encode())
        return digest.hexdigest() + ".dir"
    return "missing"


def environment_info() -> dict[str, str]:
    """Library versions and the device, as run tags."""
    info = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("torch", "transformers", "mlflow", "scikit-learn", "numpy", "pandas"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    try:
        import torch

        if torch.cuda.is_available():
            info["device"] = f"cuda:{torch.cuda.get_device_name(0)}"
        else:
            info["device"] = "cpu"
            info["cpu_threads"] = str(torch.get_num_threads())
    except ImportError:
        info["device"] = "cpu"
    return info


def lineage_tags(params: Params, data: dict[str, str | Path]) -> dict[str, Any]:
    """Tags that tie a run to code, configuration and data versions.

    ``data`` maps a short name (``train``, ``val``) to a file or folder path.
    """
    tags: dict[str, Any] = {
        "git_commit": git_commit(),
        "params_hash": params.digest(),
    }
    for name, path in data.items():
        tags[f"data.{name}.path"] = str(path)
        tags[f"data.{name}.md5"] = data_fingerprint(path)
    tags.update({f"env.{k}": v for k, v in environment_info().items()})
    return tags
