"""Fine-tuning plumbing on the tiny BERT: one epoch, checkpoint and resume after a kill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from ml.models.intent.model import IntentModel
from ml.models.intent.train import fit_intent


def test_one_epoch_writes_a_usable_bundle(tmp_path: Path, make_params: Any) -> None:
    params = make_params(tmp_path)
    out = tmp_path / "models" / "intent"
    result = fit_intent(params, params.paths.processed, out)
    assert [h["epoch"] for h in result["history"]] == [0, 1]  # 0 = warm-started head
    assert {"train_loss", "train_accuracy", "val_macro_f1", "val_accuracy", "val_loss"} <= set(
        result["history"][1]
    )
    assert result["padding"]["pad_fraction"] < 0.5
    model = IntentModel.load(result["model_dir"])
    assert model.labels == result["labels"]
    preds = model.predict(["where is my parcel", "tell me a joke now"])
    assert list(preds.columns) == ["label", "confidence", "raw_label"]
    assert preds["confidence"].between(0, 1).all()
    assert (out / "checkpoints" / "state.pt").is_file()


class Killed(Exception):
    pass


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "encoder" / "model.safetensors")) | load_file(
        str(folder / "head.safetensors")
    )


def test_resume_after_kill_matches_uninterrupted_run(tmp_path: Path, make_params: Any) -> None:
    # No warm start and no early stop so that every epoch changes the weights we compare.
    overrides = {
        "intent.train.epochs": 2,
        "intent.train.warm_start_head": False,
        "intent.train.early_stopping_patience": 5,
    }
    params = make_params(tmp_path / "a", **overrides)
    full = fit_intent(params, params.paths.processed, tmp_path / "a" / "out")

    params_b = make_params(tmp_path / "b", **overrides)
    out_b = tmp_path / "b" / "out"

    def kill_after_first(epoch: int, record: dict[str, float]) -> None:
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        fit_intent(params_b, params_b.paths.processed, out_b, on_epoch_end=kill_after_first)
    assert not (out_b / "model").exists()
    resumed = fit_intent(params_b, params_b.paths.processed, out_b)
    assert resumed["resumed"] is True
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"][1]["train_loss"] == pytest.approx(full["history"][1]["train_loss"])
    a, b = _weights(Path(full["model_dir"])), _weights(Path(resumed["model_dir"]))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)


def test_checkpoint_for_other_settings_is_ignored(tmp_path: Path, make_params: Any) -> None:
    params = make_params(tmp_path, **{"intent.train.warm_start_head": False})
    out = tmp_path / "out"
    fit_intent(params, params.paths.processed, out)
    changed = make_params(
        tmp_path, **{"intent.train.warm_start_head": False, "intent.train.learning_rate": 0.0005}
    )
    again = fit_intent(changed, changed.paths.processed, out)
    assert again["resumed"] is False
    same = fit_intent(changed, changed.paths.processed, out)
    assert same["resumed"] is True  # finished checkpoint: nothing left to train
    assert same["history"] == again["history"]
    assert same["val_macro_f1"] == pytest.approx(again["val_macro_f1"])


def test_gradient_accumulation_takes_fewer_optimizer_steps(
    tmp_path: Path, make_params: Any
) -> None:
    params = make_params(tmp_path, **{"intent.train.grad_accum_steps": 5})
    result = fit_intent(params, params.paths.processed, tmp_path / "out")
    # 96 training rows / batch 8 = 12 batches -> ceil(12 / 5) = 3 optimizer steps
    assert result["optimizer_steps"] == 3


def _encoder_change(folder: Path, model_dir: str) -> dict[str, float]:
    """Relative change of the embeddings and of each encoder layer's weights during training."""
    from transformers import AutoModel

    before = AutoModel.from_pretrained(folder).state_dict()
    after = load_file(str(Path(model_dir) / "encoder" / "model.safetensors"))
    change: dict[str, list[float]] = {}
    for name, new in after.items():
        old = before[name]
        if new.ndim < 2 or "pooler" in name:
            continue
        group = "embeddings" if "embeddings" in name else name.split(".layer.")[1].split(".")[0]
        change.setdefault(group, []).append(float((new - old).norm() / old.norm()))
    return {group: sum(values) / len(values) for group, values in change.items()}


def test_layer_lr_decay_moves_lower_layers_less(tmp_path: Path, make_params: Any) -> None:
    overrides = {"intent.train.warm_start_head": False, "intent.train.learning_rate": 0.001}
    plain = make_params(tmp_path / "plain", **overrides)
    layered = make_params(
        tmp_path / "layered", **overrides, **{"intent.train.layer_lr_decay": 0.01}
    )
    folder = Path(str(plain.intent.train.model_path))
    runs = {}
    for name, params in (("plain", plain), ("layered", layered)):
        result = fit_intent(params, params.paths.processed, tmp_path / name / "out")
        runs[name] = _encoder_change(folder, result["model_dir"])
    top = str(max(int(k) for k in runs["plain"] if k != "embeddings"))
    # One learning rate: the embeddings move about as much as the top layer ...
    assert runs["plain"]["embeddings"] > 0.1 * runs["plain"][top]
    # ... with decay 0.01 per layer they get 0.01 ** n_layers of its rate: hardly move.
    assert runs["layered"]["embeddings"] < 0.01 * runs["layered"][top]
    assert runs["layered"]["0"] < runs["layered"][top]


def test_label_smoothing_is_the_training_loss(tmp_path: Path, make_params: Any) -> None:
    import math

    # Cross-entropy against a smoothed target can never go below that target's entropy.
    eps, n_labels = 0.9, 4  # the tiny data's four intents
    true_p = 1 - eps + eps / n_labels
    floor = -(
        true_p * math.log(true_p) + (n_labels - 1) * (eps / n_labels) * math.log(eps / n_labels)
    )
    losses = {}
    for smoothing in (0.0, eps):
        params = make_params(
            tmp_path / str(smoothing),
            **{"intent.train.label_smoothing": smoothing, "intent.train.epochs": 2},
        )
        result = fit_intent(params, params.paths.processed, tmp_path / str(smoothing) / "out")
        losses[smoothing] = [h["train_loss"] for h in result["history"][1:]]
    assert all(loss >= floor - 1e-4 for loss in losses[eps]), (losses, floor)
    assert losses[0.0][-1] < floor, (losses, floor)


def test_rdrop_loss_adds_the_symmetric_kl_of_the_two_passes() -> None:
    from ml.models.intent.train import rdrop_loss

    ce = torch.nn.CrossEntropyLoss()
    target = torch.tensor([0, 1])
    first = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    assert torch.isclose(rdrop_loss(first, target, ce, 0.0), ce(first, target))
    # Two identical passes: no disagreement, only the cross-entropy.
    same = torch.cat([first, first])
    assert torch.isclose(rdrop_loss(same, target, ce, 5.0), ce(first, target))
    p, q = first.softmax(-1), second.softmax(-1)
    kl_pq = (p * (p / q).log()).sum(-1).mean()
    kl_qp = (q * (q / p).log()).sum(-1).mean()
    expected = (ce(first, target) + ce(second, target)) / 2 + 0.5 * (kl_pq + kl_qp) / 2
    assert torch.isclose(rdrop_loss(torch.cat([first, second]), target, ce, 0.5), expected)


def test_rdrop_trains_on_two_passes_of_each_batch(
    tmp_path: Path, make_params: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.models.intent.model import IntentNet

    seen: list[int] = []
    forward = IntentNet.forward

    def counting(self: IntentNet, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training:
            seen.append(len(input_ids))
        return forward(self, input_ids, mask)

    monkeypatch.setattr(IntentNet, "forward", counting)
    sizes = {}
    for alpha in (0.0, 1.0):
        seen.clear()
        params = make_params(tmp_path / str(alpha), **{"intent.train.rdrop_alpha": alpha})
        result = fit_intent(params, params.paths.processed, tmp_path / str(alpha) / "out")
        sizes[alpha] = sum(seen)
        assert result["history"][1]["train_loss"] > 0
    n_train = result["n_train"]
    assert sizes == {0.0: n_train, 1.0: 2 * n_train}


def test_early_stopping_tolerates_patience_epochs_without_improvement(
    tmp_path: Path, make_params: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ml.models.intent.train as train

    # Validation macro-F1 as seen by the trainer: the warm start, then epochs 1, 2, 3, ...
    # Epoch 1 is the best; 2 and 3 are tolerated (patience 2); 4 is the third miss and stops the
    # run, so epoch 5's 0.9 is never reached. The bundle's final validation reads the fallback.
    scripted = iter([0.1, 0.5, 0.4, 0.45, 0.3, 0.9])
    real = train._evaluate_val

    def scripted_val(run: Any) -> tuple[dict[str, float], Any]:
        metrics, probs = real(run)
        return {**metrics, "macro_f1": next(scripted, 0.0)}, probs

    monkeypatch.setattr(train, "_evaluate_val", scripted_val)
    params = make_params(
        tmp_path,
        **{"intent.train.epochs": 8, "intent.train.early_stopping_patience": 2},
    )
    result = fit_intent(params, params.paths.processed, tmp_path / "out")
    assert [h["epoch"] for h in result["history"]] == [0, 1, 2, 3, 4]
    assert result["best_epoch"] == 1
