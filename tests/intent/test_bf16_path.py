"""The GPU training path on the CPU: intent.train.precision=bf16 runs the forward passes under
bf16 autocast (the branch CUDA takes), and its checkpoint resumes into a run that finishes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ml.models.intent.model import IntentModel, IntentNet
from ml.models.intent.train import fit_intent


class Killed(Exception):
    pass


def test_bf16_training_runs_resumes_and_loads(
    tmp_path: Path, make_params: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dtypes: set[torch.dtype] = set()
    forward = IntentNet.forward

    def recording(self: IntentNet, *args: Any, **kwargs: Any) -> torch.Tensor:
        logits = forward(self, *args, **kwargs)
        if torch.is_grad_enabled():  # training steps, not validation
            dtypes.add(logits.dtype)
        return logits

    monkeypatch.setattr(IntentNet, "forward", recording)
    params = make_params(
        tmp_path, **{"intent.train.precision": "bf16", "intent.train.epochs": 2,
                     "intent.train.early_stopping_patience": 5}
    )  # fmt: skip
    out = tmp_path / "out"

    def kill_after_first(epoch: int, record: dict[str, float]) -> None:
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        fit_intent(params, params.paths.processed, out, on_epoch_end=kill_after_first)
    assert dtypes == {torch.bfloat16}
    resumed = fit_intent(params, params.paths.processed, out)
    assert resumed["resumed"] is True and resumed["bf16"] is True
    assert [h["epoch"] for h in resumed["history"]][-1] == 2
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in resumed["history"][1:])
    # The bundle is plain fp32 and serves on the CPU as any other.
    model = IntentModel.load(resumed["model_dir"], device="cpu")
    assert next(model.net.parameters()).dtype == torch.float32
    assert model.predict(["where is my parcel"])["confidence"].between(0, 1).all()


def test_auto_precision_is_fp32_on_the_cpu(tmp_path: Path, make_params: Any) -> None:
    params = make_params(tmp_path)
    assert fit_intent(params, params.paths.processed, tmp_path / "out")["bf16"] is False
