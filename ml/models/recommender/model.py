"""The text-aware sequential recommender.

Item vector = projection of the item's (frozen) text embedding + a learned id embedding that is
zero for items never seen in training, so new items are rankable from their text alone.
User vector = GRU over the recent history's item vectors + an embedding of the user's profile
cluster (k-means over mean text vectors). Score = dot product.

Both sides also carry a text channel: the item's raw text vector, and on the user side the
recency-weighted text vector of the last few items times a learned scale. Its dot product is the
text-similarity baseline, so the network only has to learn what to add to it (on sparse real
data, text similarity alone is a strong ranker). A low-rank learned correction of that profile
(zero at the start) lets the channel learn which texts follow which, not only which are alike.

On top of the network's score, :class:`Recommender` adds a "bought together" channel:
``weight * sum_age DECAY**age * log(1 + c(item, candidate))`` over the last RECENT history
items, where ``c`` counts how often the candidate came shortly after (or, at a lower weight,
before) the item in the training sequences (``cooccurrence_counts`` in baselines.py), its weight
chosen on validation after training (0 = off). What each part adds on Amazon Scientific, over
three seeds: bench/amazon_quality.py and bench/results/amazon_quality.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from torch import nn

from ml.models.recommender.features import assign_clusters

if TYPE_CHECKING:
    pass

MODEL_FILE = "model.pt"
ITEMS_FILE = "items.parquet"
CLUSTERS_FILE = "user_clusters.npz"
TRANSITIONS_FILE = "transitions.npz"  # only when the bought-together channel is on
# What inference needs from a model folder (not checkpoints or the text cache).
INFERENCE_FILES = (MODEL_FILE, ITEMS_FILE, CLUSTERS_FILE, TRANSITIONS_FILE)
RECENT = 3  # history items in the user's text profile
DECAY = 0.5  # their weight halves with each step back in time


class SeqRecNet(nn.Module):
    text_vectors: torch.Tensor  # buffer: (n_items, text_dim), frozen text embeddings
    seen: torch.Tensor  # buffer: 1.0 for items seen in training

    def __init__(
        self,
        text_vectors: torch.Tensor,
        seen: torch.Tensor,
        dim: int,
        n_clusters: int,
        dropout: float = 0.2,
        id_dropout: float = 0.0,
        text_adapter_rank: int = 0,
    ) -> None:
        super().__init__()
        n_items, text_dim = text_vectors.shape
        self.register_buffer("text_vectors", text_vectors.float())
        # 1 for items seen in training; their id embedding is used, others get text only.
        self.register_buffer("seen", seen.float())
        self.text_proj = nn.Linear(text_dim, dim)
        self.id_emb = nn.Embedding(n_items, dim)
        nn.init.normal_(self.id_emb.weight, std=0.01)
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.cluster_emb = nn.Embedding(n_clusters, dim)
        nn.init.zeros_(self.cluster_emb.weight)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.dim = dim
        self.id_dropout = id_dropout
        # Weight of the text channel (cosines live in [-1, 1]; softmax logits need more range).
        self.text_scale = nn.Parameter(torch.tensor(5.0))
        # profile + up(down(profile)); ``up`` starts at zero, so training starts from the
        # plain text-similarity channel.
        self.text_adapter: nn.Sequential | None = None
        if text_adapter_rank > 0:
            down = nn.Linear(text_dim, text_adapter_rank, bias=False)
            up = nn.Linear(text_adapter_rank, text_dim, bias=False)
            nn.init.zeros_(up.weight)
            self.text_adapter = nn.Sequential(down, up)

    @property
    def n_items(self) -> int:
        return int(self.text_vectors.shape[0])

    def item_vectors(self, idx: torch.Tensor | None = None) -> torch.Tensor:
        """[learned part | raw text vector] for all items, or only rows ``idx`` (sampled softmax
        on a large catalog)."""
        if idx is None:
            text, ids, seen = self.text_vectors, self.id_emb.weight, self.seen
        else:
            text, ids, seen = self.text_vectors[idx], self.id_emb(idx), self.seen[idx]
        if self.training and self.id_dropout > 0:
            # Hide some items' id embeddings so the text path alone must rank them well: that
            # is all a new (cold-start) item has.
            seen = seen * (torch.rand_like(seen) >= self.id_dropout)
        return torch.cat([self.text_proj(text) + ids * seen[:, None], text], dim=1)

    def user_vectors(
        self,
        history: torch.Tensor,
        lengths: torch.Tensor,
        clusters: torch.Tensor,
        items: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``history`` is right-padded with ``n_items`` (the padding index, a zero vector)."""
        items = self.item_vectors() if items is None else items
        table = torch.cat([items, items.new_zeros(1, items.shape[1])])
        x = table[history]
        learned, text = x[..., : self.dim], x[..., self.dim :]
        # An empty history runs one step on the zero vector: a learned "no history" state.
        packed = nn.utils.rnn.pack_padded_sequence(
            self.drop(learned), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        _, h = self.gru(packed)
        user = self.out(self.drop(h[-1])) + self.cluster_emb(clusters)
        # Text profile: last RECENT items, weight DECAY**age (0 = newest); padding has age < 0.
        age = (
            lengths.to(history.device)[:, None]
            - 1
            - torch.arange(history.shape[1], device=history.device)
        )
        weights = torch.where((age >= 0) & (age < RECENT), DECAY ** age.clamp(min=0).float(), 0.0)
        profile = (weights[..., None].to(text.dtype) * text).sum(dim=1)
        if self.text_adapter is not None:
            profile = profile + self.text_adapter(profile)
        return torch.cat([user, self.text_scale * profile], dim=1)

    def extend_items(self, text_vectors: torch.Tensor) -> None:
        """Append new items (text only: their id embedding stays zero)."""
        n_new = text_vectors.shape[0]
        old_text, old_seen = self.text_vectors, self.seen
        device = old_text.device
        self.text_vectors = torch.cat([old_text, text_vectors.float().to(device)])
        self.seen = torch.cat([old_seen, torch.zeros(n_new, device=device)])
        weight = torch.cat(
            [self.id_emb.weight.data, torch.zeros(n_new, self.id_emb.embedding_dim, device=device)]
        )
        self.id_emb = nn.Embedding.from_pretrained(weight, freeze=False)


def pad_histories(
    histories: Sequence[Sequence[int]], max_history: int, pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (batch, L) tensor of the last ``max_history`` items, and true lengths."""
    trimmed = [[int(i) for i in h][-max_history:] for h in histories]
    width = max(1, max((len(h) for h in trimmed), default=1))
    out = torch.full((len(trimmed), width), pad, dtype=torch.long)
    for row, hist in enumerate(trimmed):
        if hist:
            out[row, : len(hist)] = torch.tensor(hist, dtype=torch.long)
    return out, torch.tensor([len(h) for h in trimmed], dtype=torch.long)


@dataclass
class Recommender:
    """A trained network plus what inference needs: item ids, text vectors, cluster centroids."""

    net: SeqRecNet
    item_ids: list[str]
    text_vectors: np.ndarray
    centroids: np.ndarray
    max_history: int
    config: dict[str, Any]
    name: str = "model"
    # The "bought together" channel: co-occurrence counts c(i, j) from training, and its weight
    # in the score (0 = off; train.py picks it on validation).
    transitions: sparse.csr_matrix | None = None
    transition_weight: float = 0.0

    def __post_init__(self) -> None:
        self.net.eval()
        self._index = {item_id: i for i, item_id in enumerate(self.item_ids)}

    def _with_transitions(
        self, scores: torch.Tensor, histories: Sequence[Sequence[int]]
    ) -> torch.Tensor:
        """``scores`` + weight * sum over the last RECENT history items of DECAY**age *
        log(1 + counts from that item) (age 0 = the newest item, as in the text profile)."""
        if self.transitions is None or not self.transition_weight:
            return scores
        channel = np.zeros((len(histories), self.n_items), dtype=np.float32)
        for age in range(RECENT):
            item = [int(h[-1 - age]) if len(h) > age else -1 for h in histories]
            rows = self.transitions[[max(i, 0) for i in item]].toarray()
            rows[[i < 0 for i in item]] = 0.0  # a history shorter than age + 1
            channel += (DECAY**age) * np.log1p(rows)
        return scores + self.transition_weight * torch.from_numpy(channel).to(scores.device)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def device(self) -> torch.device:
        return self.net.text_vectors.device

    def to_indices(self, item_ids: Sequence[str]) -> list[int]:
        """Map item_id strings to item_idx; unknown ids are dropped (they carry no signal)."""
        return [self._index[i] for i in map(str, item_ids) if i in self._index]

    @torch.inference_mode()
    def user_vectors(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        trimmed = [[int(i) for i in h][-self.max_history :] for h in histories]
        clusters = torch.from_numpy(assign_clusters(trimmed, self.text_vectors, self.centroids))
        hist, lengths = pad_histories(trimmed, self.max_history, pad=self.n_items)
        return self.net.user_vectors(
            hist.to(self.device), lengths, clusters.to(self.device)
        ).float()

    @torch.inference_mode()
    def score_tensor(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        items = self.net.item_vectors().float()
        return self._with_transitions(self.user_vectors(histories) @ items.T, histories)

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """Dense (batch, n_items) scores: the evaluation's Scorer protocol."""
        return self.score_tensor(histories).cpu().numpy()

    @torch.inference_mode()
    def top_k(
        self,
        histories: Sequence[Sequence[int]],
        k: int,
        *,
        batch_size: int = 1024,
        exclude_history: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item_idx and scores per history: batched matmul + torch.topk.

        Items already in the history are excluded (duplicates in a history are harmless).
        """
        k = min(k, self.n_items)
        items = self.net.item_vectors().float()
        top_idx = np.zeros((len(histories), k), dtype=np.int64)
        top_val = np.zeros((len(histories), k), dtype=np.float32)
        for start in range(0, len(histories), batch_size):
            batch = histories[start : start + batch_size]
            scores = self._with_transitions(self.user_vectors(batch) @ items.T, batch)
            if exclude_history:
                mask_hist, _ = pad_histories(batch, max_history=10**9, pad=self.n_items)
                scores = torch.cat([scores, scores.new_zeros(len(batch), 1)], dim=1)
                scores.scatter_(1, mask_hist.to(scores.device), float("-inf"))
                scores = scores[:, :-1]
            val, idx = torch.topk(scores, k, dim=1)
            top_idx[start : start + len(batch)] = idx.cpu().numpy()
            top_val[start : start + len(batch)] = val.cpu().numpy()
        return top_idx, top_val

    def add_items(self, item_ids: Sequence[str], text_vectors: np.ndarray) -> None:
        """Make new items rankable from their text vectors (same encoder as training)."""
        if len(item_ids) != len(text_vectors):
            raise ValueError("one text vector per new item id is needed")
        known = [i for i in item_ids if str(i) in self._index]
        if known:
            raise ValueError(f"items already in the catalog: {known[:5]}")
        self.net.extend_items(torch.from_numpy(np.asarray(text_vectors, dtype=np.float32)))
        self.item_ids = [*self.item_ids, *map(str, item_ids)]
        self.text_vectors = np.vstack([self.text_vectors, text_vectors]).astype(np.float32)
        if self.transitions is not None:  # new items have no transitions yet
            n = len(self.item_ids)
            self.transitions = self.transitions.copy()
            self.transitions.resize((n, n))
        self._index = {item_id: i for i, item_id in enumerate(self.item_ids)}

    # --- persistence: a plain folder, also what the MLflow pyfunc ships -------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "state_dict": self.net.state_dict(),
                "config": self.config,
                "max_history": self.max_history,
                "transition_weight": self.transition_weight,
            },
            folder / MODEL_FILE,
        )
        if self.transitions is not None:
            sparse.save_npz(folder / TRANSITIONS_FILE, self.transitions.tocsr())
        else:  # a folder saved over must not keep an older model's transitions
            (folder / TRANSITIONS_FILE).unlink(missing_ok=True)
        pd.DataFrame({"item_id": self.item_ids}).to_parquet(folder / ITEMS_FILE, index=False)
        np.savez(folder / CLUSTERS_FILE, centroids=self.centroids, text_vectors=self.text_vectors)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | None = None) -> Recommender:
        folder = Path(folder)
        blob = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
        item_ids = pd.read_parquet(folder / ITEMS_FILE)["item_id"].astype(str).tolist()
        with np.load(folder / CLUSTERS_FILE) as arrays:
            centroids = arrays["centroids"]
            text_vectors = arrays["text_vectors"]
        state = blob["state_dict"]
        cfg = blob["config"]
        net = SeqRecNet(
            torch.from_numpy(text_vectors),
            state["seen"],
            dim=int(cfg["dim"]),
            n_clusters=len(centroids),
            dropout=float(cfg.get("dropout", 0.0)),
            text_adapter_rank=int(cfg.get("text_adapter_rank", 0)),
        )
        net.load_state_dict(state)
        if device:
            net.to(device)
        transitions_file = folder / TRANSITIONS_FILE
        transitions = (
            sparse.load_npz(transitions_file).tocsr() if transitions_file.exists() else None
        )
        return cls(
            net,
            item_ids,
            text_vectors,
            centroids,
            int(blob["max_history"]),
            cfg,
            transitions=transitions,
            transition_weight=float(blob.get("transition_weight", 0.0)),
        )
