"""The recommender's pipeline steps with MLflow around the pure functions.

train: train_recommender -> MLflow run (params, curves, lineage tags, k-means artifact) ->
pyfunc registered as a new version -> <models>/recommender/registration.json.
evaluate: evaluate_recommender -> metrics.json / per_user.parquet / plots, also logged to the
training run named in registration.json.
predict: batch top-K for every user of a split to Parquet.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.core.errors import InputError
from ml.models.recommender.data import load_recsys, recsys_dir

if TYPE_CHECKING:
    from ml.core.config import Params

log = logging.getLogger(__name__)


def model_dir(params: Params) -> Path:
    return Path(params.paths.models) / "recommender"


def reports_dir(params: Params) -> Path:
    return Path(params.paths.reports) / "recommender"


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, float]:
    """MLflow metric names may not contain '@'; finite numbers only."""
    out = {}
    for key, value in values.items():
        if isinstance(value, int | float) and math.isfinite(float(value)):
            out[f"{prefix}{key}".replace("@", "_at_")] = float(value)
    return out


def train_step(
    params: Params, processed_dir: str | Path | None = None, out_dir: str | Path | None = None
) -> dict[str, Any]:
    import mlflow

    from ml.models.recommender.model import CLUSTERS_FILE
    from ml.models.recommender.pyfunc import log_and_register, write_registration
    from ml.models.recommender.train import train_recommender
    from ml.stack.tracking import configure_mlflow, lineage_tags, record_model_version, step_run

    processed = Path(processed_dir or params.paths.processed)
    out = Path(out_dir or model_dir(params))
    configure_mlflow(params.mlflow, params.mlflow.recommender_experiment)
    folder = recsys_dir(processed)
    with step_run("recommender") as run:
        mlflow.set_tags(
            lineage_tags(
                params,
                {
                    "items": folder / "items.parquet",
                    "train": folder / "train.parquet",
                    "val": folder / "val.parquet",
                },
            )
        )
        mlflow.log_params(
            {f"train.{k}": v for k, v in params.recommender.train.model_dump(mode="json").items()}
        )
        summary = train_recommender(params, processed, out)
        for row in summary["curves"]:
            mlflow.log_metrics(
                _flat("", {k: v for k, v in row.items() if k != "epoch"}), step=int(row["epoch"])
            )
        mlflow.log_metrics(
            _flat(
                "",
                {
                    "best_val_ndcg@10": summary["best_val_ndcg@10"],
                    "best_epoch": summary["best_epoch"],
                    # the bought-together channel's weight, chosen on validation after training
                    "transition_weight": summary["transition_channel"]["weight"],
                },
            )
        )
        mlflow.log_artifact(str(out / CLUSTERS_FILE), artifact_path="user_clusters")
        mlflow.log_artifact(str(out / "train_summary.json"))
        items = pd.read_parquet(folder / "items.parquet", columns=["item_id"])
        example = items["item_id"].astype(str).head(3).tolist()
        info = log_and_register(out, params.mlflow.recommender_model_name, example)
        info["run_id"] = run.info.run_id
        record_model_version(run, params.mlflow.recommender_model_name, info.get("version"))
    write_registration(info, out)
    summary.pop("curves")
    return {**summary, "registration": info}


def evaluate_step(
    params: Params,
    processed_dir: str | Path | None = None,
    in_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    split: str = "test",
    log_to_mlflow: bool = True,
) -> dict[str, Any]:
    from ml.models.recommender.evaluate import evaluate_recommender
    from ml.models.recommender.pyfunc import REGISTRATION_FILE

    processed = Path(processed_dir or params.paths.processed)
    models = Path(in_dir or model_dir(params))
    reports = Path(out_dir or reports_dir(params))
    metrics = evaluate_recommender(params, processed, models, reports, split=split)
    registration = models / REGISTRATION_FILE
    if log_to_mlflow and registration.exists():
        import mlflow

        from ml.stack.tracking import resumed_run

        run_id = json.loads(registration.read_text())["run_id"]
        with resumed_run(params.mlflow, run_id):
            mlflow.log_metrics(_flat(f"{split}.", metrics["model"]))
            for name, values in metrics["baselines"].items():
                mlflow.log_metrics(_flat(f"{split}.{name}.", values))
            mlflow.log_metrics(_flat(f"{split}.margin.", metrics["margin"]))
            mlflow.log_artifact(metrics["files"]["metrics"], artifact_path="evaluation")
            mlflow.log_artifact(metrics["files"]["per_user"], artifact_path="evaluation")
            for plot in metrics["files"]["plots"]:
                mlflow.log_artifact(plot, artifact_path="plots")
        metrics["mlflow_run_id"] = run_id
    return {
        "split": split,
        "model": metrics["model"],
        "baselines": metrics["baselines"],
        "margin": metrics["margin"],
        "files": metrics["files"],
    }


def predict_step(
    params: Params,
    processed_dir: str | Path | None = None,
    in_dir: str | Path | None = None,
    out_file: str | Path | None = None,
    split: str = "test",
    k: int | None = None,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """Top-K item_ids for every user of ``split`` (their full history) to Parquet."""
    from ml.models.recommender.model import Recommender

    k = k or params.recommender.top_k
    data = load_recsys(processed_dir or params.paths.processed)
    model = Recommender.load(in_dir or model_dir(params))
    frame = data.split(split)
    histories = [[int(i) for i in h] for h in frame["history"]]
    if split == "test":  # recommend after everything the user has: test history + its target
        histories = [[*h, int(t)] for h, t in zip(histories, frame["target"], strict=True)]
    top, scores = model.top_k(histories, k, batch_size=batch_size)
    ids = np.asarray(model.item_ids, dtype=object)
    out = pd.DataFrame(
        {
            "user_idx": frame["user_idx"].to_numpy(),
            "items": [list(ids[row]) for row in top],
            "item_idx": [row.tolist() for row in top],
            "scores": [row.astype(float).tolist() for row in scores],
        }
    )
    path = Path(out_file or model_dir(params) / "predictions" / f"top{k}_{split}.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(path, index=False)
    return {"file": str(path), "users": len(out), "k": k}


def predict_history(
    params: Params, item_ids: list[str], k: int | None = None, in_dir: str | Path | None = None
) -> dict[str, Any]:
    """Top-K for one history given on the command line."""
    from ml.models.recommender.model import Recommender
    from ml.models.recommender.pyfunc import score_frame

    model = Recommender.load(in_dir or model_dir(params))
    unknown = [i for i in item_ids if not model.to_indices([i])]
    frame = score_frame(model, [item_ids], k or params.recommender.top_k)
    if not len(frame):
        raise InputError("no recommendations")
    return {
        "history": item_ids,
        "unknown_ignored": unknown,
        "items": frame["items"][0],
        "scores": frame["scores"][0],
    }
