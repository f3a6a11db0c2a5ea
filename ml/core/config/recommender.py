"""Settings of the recommender (params.yaml section ``recommender``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat


class RecommenderTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Local Hugging Face folder for item text embeddings; null = the shipped MiniLM.
    text_model_path: Path | None = None
    dim: int = Field(64, ge=4)
    max_history: int = Field(20, ge=1)
    epochs: int = Field(
        20, ge=1, le=100, title="Epochs", description="Passes over the training sequences."
    )
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(
        2e-3, gt=0, le=0.1, title="Learning rate", description="Adam learning rate."
    )
    weight_decay: float = Field(1e-5, ge=0)
    early_stopping_patience: int = Field(
        3,
        ge=0,
        description=(
            "Epochs in a row without a better validation NDCG@10 that training tolerates; "
            "it stops at the next one (0: at the first epoch that does not improve)."
        ),
    )
    n_user_clusters: int = Field(8, ge=1)
    seed: int = 17
    dropout: float = Field(0.2, ge=0, lt=1)
    # Share of items whose id embedding is hidden in each training step (cold-start robustness).
    id_dropout: float = Field(0.2, ge=0, lt=1)
    # Rank of a learned low-rank correction of the user's text profile (0 = plain cosine to the
    # recent items' texts): it learns which texts follow which, not only which are alike.
    text_adapter_rank: int = Field(32, ge=0)
    # Weights tried for the "bought together" channel, log(1 + c(item, candidate)) from the last
    # three history items (halving with age), added to the network's score; the one with the
    # best validation NDCG@10 is kept (0 = off). [] or [0] turns the channel off.
    transition_weights: list[NonNegativeFloat] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]
    )
    # c(i, j), from the training sequences: j within transition_window steps after i, weight
    # 0.5 ** (gap - 1); j within the window before i counts transition_reverse_weight times as
    # much (window 1, reverse 0: plain next-item counts, the co-occurrence baseline's).
    transition_window: int = Field(2, ge=1)
    transition_reverse_weight: NonNegativeFloat = 0.5
    # full = softmax over the whole catalog; sampled = in-batch negatives with logQ correction;
    # auto = full up to full_softmax_max_items items (cheap on CPU for a few thousand items).
    loss: str = Field("auto", pattern="^(auto|full|sampled)$")
    full_softmax_max_items: int = Field(10_000, ge=1)
    # null = cuda when available, else cpu.
    device: str | None = None
    # auto: bf16 autocast on a CUDA device that supports it, else fp32; bf16: on any device
    # (CPU autocast runs the GPU's code path); fp32: never.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    # CPU threads for training (null = torch's default). The model is small: one thread avoids
    # the oversubscription that makes it 10-20x slower on a shared machine.
    cpu_threads: int | None = Field(1, ge=1)
    max_train_examples: int | None = Field(
        None,
        ge=1,
        title="Training sample size",
        description="At most this many training examples per epoch (null = all): quick runs.",
    )


class RecommenderEvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ks: list[int] = Field(default_factory=lambda: [10, 20])
    # Users with at most this many history items form the "short history" slice.
    short_history_max: int = Field(3, ge=0)
    batch_size: int = Field(512, ge=1)


class RecommenderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: RecommenderTrainConfig = Field(default_factory=RecommenderTrainConfig)
    eval: RecommenderEvalConfig = Field(default_factory=RecommenderEvalConfig)
    top_k: int = Field(20, ge=1)
