"""Plumbing of the network and the inference wrapper: defined results on odd inputs."""

from __future__ import annotations

import numpy as np
import pytest

from ml.core.config.recommender import RecommenderTrainConfig
from ml.models.recommender.model import Recommender
from ml.models.recommender.train import CHECKPOINT, fit


def test_top_k_excludes_history_and_handles_odd_histories(trained) -> None:  # type: ignore[no-untyped-def]
    model, _, _ = trained
    hist = [[0, 1, 2], [], [5, 5, 5, 5]]
    top, scores = model.top_k(hist, 10)
    assert top.shape == (3, 10) and scores.shape == (3, 10)
    assert not {0, 1, 2} & set(top[0].tolist())
    assert 5 not in top[2]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    assert np.isfinite(scores).all()  # empty history still gets a ranking
    # Duplicates are a plain repeat purchase: same result as the dense matrix says.
    dense = model.score([[5, 5, 5, 5]])[0]
    dense[5] = -np.inf
    assert top[2].tolist() == np.argsort(-dense)[:10].tolist()


def test_unknown_ids_are_ignored(trained) -> None:  # type: ignore[no-untyped-def]
    model, _, _ = trained
    known = [model.item_ids[3], model.item_ids[7]]
    assert model.to_indices(["nope", known[0], "also-nope", known[1]]) == [3, 7]
    assert model.to_indices(["nope"]) == []


def test_score_matches_top_k_and_batches(trained) -> None:  # type: ignore[no-untyped-def]
    model, _, _ = trained
    hist = [[i, i + 1] for i in range(0, 40, 2)]
    top_small, _ = model.top_k(hist, 5, batch_size=3)
    top_big, _ = model.top_k(hist, 5, batch_size=1000)
    assert np.array_equal(top_small, top_big)


def test_save_load_roundtrip_and_new_items(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, _, folder = trained
    loaded = Recommender.load(folder)
    hist = [[0, 1], [10], []]
    assert np.array_equal(loaded.top_k(hist, 10)[0], model.top_k(hist, 10)[0])
    # A new item whose text vector equals a strong candidate's is ranked like it (id part = 0).
    best = int(loaded.top_k([[10]], 1)[0][0, 0])
    loaded.add_items(["NEW"], loaded.text_vectors[[best]])
    assert loaded.n_items == model.n_items + 1
    rank_of_new = int(np.argsort(-loaded.score([[10]])[0]).tolist().index(loaded.n_items - 1))
    assert rank_of_new < loaded.n_items // 2
    with pytest.raises(ValueError, match="already in the catalog"):
        loaded.add_items(["NEW"], loaded.text_vectors[[0]])


def test_checkpoint_resume(world, world_vectors, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = RecommenderTrainConfig(dim=8, epochs=1, batch_size=256, n_user_clusters=2)
    _, first = fit(world, world_vectors, cfg, tmp_path)
    assert (tmp_path / CHECKPOINT).exists() and first["epochs_run"] == 1
    cfg2 = cfg.model_copy(update={"epochs": 2})
    _, second = fit(world, world_vectors, cfg2, tmp_path)
    # Resumed: epoch 1 is not repeated, its curve row is kept.
    assert second["epochs_run"] == 2
    assert [row["epoch"] for row in second["curves"]] == [1, 2]
    assert second["curves"][0] == first["curves"][0]


def test_bf16_precision_takes_the_autocast_path_on_the_cpu(world, world_vectors, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = RecommenderTrainConfig(
        dim=8, epochs=1, batch_size=256, n_user_clusters=2, precision="bf16"
    )
    _, first = fit(world, world_vectors, cfg, tmp_path)
    assert first["bf16"] is True
    _, second = fit(world, world_vectors, cfg.model_copy(update={"epochs": 2}), tmp_path)
    assert second["epochs_run"] == 2 and second["bf16"] is True  # resumed from the bf16 checkpoint
    assert all(np.isfinite(row["train_loss"]) for row in second["curves"])


def test_sampled_softmax_trains(world, world_vectors, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = RecommenderTrainConfig(
        dim=16, epochs=3, batch_size=128, loss="sampled", learning_rate=5e-3, n_user_clusters=2
    )
    _model, summary = fit(world, world_vectors, cfg, tmp_path)
    assert summary["loss"] == "sampled_softmax_logq"
    losses = [row["train_loss"] for row in summary["curves"]]
    assert losses[-1] < losses[0]
    assert summary["best_val_ndcg@10"] > 0.05  # far above chance (~10/120 items → ~0.03)


def test_bought_together_channel_is_chosen_on_validation_saved_and_extended(
    trained, world, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from ml.models.recommender.baselines import cooccurrence_counts
    from ml.models.recommender.train import choose_transition_weight, validation_ndcg

    _, _, folder = trained
    model = Recommender.load(folder)
    # The weight kept is the one with the best validation NDCG@10 among those tried.
    chosen = choose_transition_weight(model, world, [0.0, 0.5, 4.0])
    by_weight = chosen["val_ndcg@10"]
    assert set(by_weight) == {"0.0", "0.5", "4.0"}
    assert by_weight[str(chosen["weight"])] == max(by_weight.values())
    assert model.transition_weight == chosen["weight"]
    assert validation_ndcg(model, world) == pytest.approx(by_weight[str(chosen["weight"])])
    # The counts are the configured co-occurrence (here: plain next-item transitions).
    assert (chosen["window"], chosen["reverse_weight"]) == (1, 0.0)
    if chosen["weight"]:
        expected = cooccurrence_counts([list(s) for s in world.train["items"]], world.n_items)
        assert model.transitions is not None
        assert np.array_equal(model.transitions.toarray(), expected.toarray())
    wide = choose_transition_weight(
        Recommender.load(folder), world, [1.0], window=2, reverse_weight=0.5
    )
    assert (wide["window"], wide["reverse_weight"]) == (2, 0.5)

    # With the channel forced on and heavy, an item's most frequent successor comes first.
    model.transitions = None
    choose_transition_weight(model, world, [1.0])  # sets the training transitions
    model.transition_weight = 1000.0
    assert model.transitions is not None
    counts = model.transitions.toarray()
    last = int(np.argmax(counts.max(axis=1)))
    assert int(model.top_k([[last]], 1)[0][0, 0]) == int(np.argmax(counts[last]))
    # A history without transitions (empty) ranks as the network alone would.
    net_only = Recommender.load(folder)
    net_only.transition_weight = 0.0
    assert np.allclose(model.score([[]]), net_only.score([[]]))

    # Saved and loaded with the folder; new items get empty transition rows and columns.
    model.save(tmp_path / "with-channel")
    loaded = Recommender.load(tmp_path / "with-channel")
    assert loaded.transition_weight == 1000.0
    assert np.array_equal(loaded.top_k([[last], [0, 3]], 5)[0], model.top_k([[last], [0, 3]], 5)[0])
    loaded.add_items(["NEW"], loaded.text_vectors[[0]])
    assert loaded.transitions is not None and loaded.transitions.shape == (loaded.n_items,) * 2
    assert loaded.score([[loaded.n_items - 1]]).shape == (1, loaded.n_items)

    # Off: weights [0] drop the channel, and saving over the folder removes its file.
    off = choose_transition_weight(loaded, world, [0.0])
    assert off["weight"] == 0.0 and loaded.transitions is None
    loaded.save(tmp_path / "with-channel")
    assert Recommender.load(tmp_path / "with-channel").transitions is None


def test_early_stopping_tolerates_patience_epochs_without_improvement(  # type: ignore[no-untyped-def]
    world, world_vectors, tmp_path, monkeypatch
) -> None:
    import ml.models.recommender.train as train

    # Validation NDCG@10 per epoch: epoch 1 is the best; 2-4 are tolerated (patience 3); 5 is the
    # fourth miss and stops the run, so epoch 6's 0.9 is never reached. Later calls (choosing
    # the bought-together weight) read the fallback.
    scripted = iter([0.5, 0.4, 0.45, 0.3, 0.2, 0.9])
    monkeypatch.setattr(train, "validation_ndcg", lambda *a, **k: next(scripted, 0.0))
    cfg = RecommenderTrainConfig(
        dim=8, epochs=10, batch_size=256, n_user_clusters=2, early_stopping_patience=3
    )
    _, summary = fit(world, world_vectors, cfg, tmp_path)
    assert [row["epoch"] for row in summary["curves"]] == [1, 2, 3, 4, 5]
    assert summary["best_epoch"] == 1 and summary["epochs_run"] == 5
