"""The intent network (encoder + mean pooling + linear head) and its on-disk bundle.

A bundle folder holds everything needed to predict without the training code's state:
``encoder/`` (HF config + safetensors weights), ``tokenizer/``, ``head.safetensors`` and
``intent_meta.json`` (labels, out-of-scope threshold, max_length, ...).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ml.models.encoders import mean_pool
from ml.models.intent.data import pad_batch, sorted_batches, tokenize
from ml.models.intent.inference import (
    META_FILE,
    batched_proba,
    clip_texts,
    predictions_frame,
    read_meta,
)
from ml.models.intent.inference import (
    apply_threshold as apply_threshold,  # re-exported: callers import it from here
)


class IntentNet(nn.Module):
    """AutoModel encoder, mean pooling (how MiniLM was trained), L2 norm, dropout, linear head."""

    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)  # type: ignore[union-attr,arg-type]
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = mean_pool(out.last_hidden_state, attention_mask)
        # Normalised like the frozen-embedding baseline, so the head can start from its weights.
        return nn.functional.normalize(pooled.float(), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))


def build_net(model_path: Path, n_labels: int, dropout: float) -> tuple[IntentNet, Any]:
    """Load encoder + tokenizer from a local HF folder (offline) and attach a fresh head."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    encoder = AutoModel.from_pretrained(model_path)
    return IntentNet(encoder, n_labels, dropout), tokenizer


def set_head_from_linear(net: IntentNet, coef: np.ndarray, intercept: np.ndarray) -> None:
    """Warm-start the head with a (n_labels, hidden) weight matrix and bias."""
    with torch.no_grad():
        net.head.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
        net.head.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))


def save_bundle(net: IntentNet, tokenizer: Any, folder: Path, meta: dict[str, Any]) -> Path:
    """Write the bundle (weights as safetensors) to ``folder``; returns it."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    net.encoder.save_pretrained(folder / "encoder", safe_serialization=True)  # type: ignore[operator]
    tokenizer.save_pretrained(folder / "tokenizer")
    head = {k: v.detach().cpu().contiguous() for k, v in net.head.state_dict().items()}
    save_file(head, str(folder / "head.safetensors"))
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    return folder


def is_bundle(folder: str | Path) -> bool:
    return (Path(folder) / META_FILE).is_file()


@dataclass
class IntentModel:
    """A loaded bundle: scores texts, applies the out-of-scope threshold."""

    net: IntentNet
    tokenizer: Any
    labels: list[str]
    threshold: float
    max_length: int
    oos_label: str = "out_of_scope"
    max_text_chars: int = 2000
    batch_size: int = 64
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def load(
        cls, folder: str | Path, device: str | None = None, attn_implementation: str | None = None
    ) -> IntentModel:
        """``attn_implementation`` is passed to transformers (e.g. "eager" for an ONNX export
        whose attention the ONNX Runtime optimiser can fuse); None = the library's default."""
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        meta = read_meta(folder)
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        encoder = AutoModel.from_pretrained(folder / "encoder", **extra)
        net = IntentNet(encoder, len(meta.labels), dropout=0.0)
        net.head.load_state_dict(load_file(str(folder / "head.safetensors")))
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        net.to(dev).eval()
        return cls(
            net=net,
            tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
            labels=meta.labels,
            threshold=meta.threshold,
            max_length=meta.max_length,
            oos_label=meta.oos_label,
            max_text_chars=meta.max_text_chars,
            batch_size=meta.batch_size,
            device=dev,
        )

    def predict_proba(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        """Class probabilities (n, n_labels); texts are scored in length-sorted batches."""
        return predict_proba(
            self.net,
            self.tokenizer,
            clip_texts(texts, self.max_text_chars),
            max_length=self.max_length,
            batch_size=self.batch_size,
            device=self.device,
            show_progress=show_progress,
        )

    def predict(self, texts: Sequence[Any]) -> pd.DataFrame:
        """Contract output (ml.core.schemas.INTENT_PYFUNC_OUTPUT): label, confidence, raw_label.

        Defined results for bad rows: a missing, non-string or blank text gets label
        ``oos_label``, confidence 0.0 and raw_label ""; huge texts are cut to
        ``max_text_chars`` characters and ``max_length`` tokens
        (:func:`ml.models.intent.inference.predictions_frame`).
        """
        return predictions_frame(
            texts,
            self.predict_proba,
            labels=self.labels,
            threshold=self.threshold,
            oos_label=self.oos_label,
        )


def predict_proba(
    net: IntentNet,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 64,
    device: torch.device | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    device = device or next(net.parameters()).device

    def score(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        ids_t, mask_t = torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device)
        with autocast(device):
            logits = net(ids_t, mask_t)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            return batched_proba(
                tokenizer,
                texts,
                score,
                n_labels=net.head.out_features,
                max_length=max_length,
                batch_size=batch_size,
                show_progress=show_progress,
            )
    finally:
        net.train(was_training)


def autocast(device: torch.device, enabled: bool | None = None) -> Any:
    """bf16 autocast; by default on CUDA only (a no-op context on CPU, where fp32 is faster).
    Training passes ``enabled`` from ``intent.train.precision``."""
    on = device.type == "cuda" if enabled is None else enabled
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


def embed_texts(
    net: IntentNet,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 64,
    show_progress: bool = True,
) -> np.ndarray:
    """The normalised mean-pooled embeddings the head sees (n, hidden), in input order."""
    from ml.core.progress import progress

    device = next(net.parameters()).device
    ids = tokenize(tokenizer, texts, max_length)
    out = np.zeros((len(texts), int(net.head.in_features)), dtype=np.float32)
    was_training = net.training
    net.eval()
    batches = sorted_batches([len(x) for x in ids], batch_size)
    with torch.inference_mode():
        for batch in progress(batches, desc="embedding", unit="batch", disable=not show_progress):
            input_ids, mask = pad_batch([ids[i] for i in batch], tokenizer.pad_token_id or 0)
            with autocast(device):
                emb = net.embed(input_ids.to(device), mask.to(device))
            out[batch] = emb.float().cpu().numpy()
    net.train(was_training)
    return out
