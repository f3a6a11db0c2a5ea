"""The per-label table an utterances partition is checked with (suite ``utterance_labels``).

Per-label minimum counts and the label-distribution drift are properties of the label column
as a whole, so they are computed here into a small table (one row per label, indexed by the
label so GE's unexpected-index list names the offending labels) that GE then validates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from ml.core.metrics import total_variation


def distribution(counts: Mapping[str, int]) -> dict[str, float]:
    """Counts -> shares summing to one (empty -> empty)."""
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def label_table(
    labels: pd.Series,
    reference_counts: Mapping[str, int] | None,
    expected_labels: Iterable[str] = (),
) -> pd.DataFrame:
    """One row per label: count, share, reference_share, tv_distance (NaN without a reference).

    ``expected_labels`` get a row even when absent (count 0), so a vanished label is caught by
    the per-label minimum.
    """
    counts = {str(k): int(v) for k, v in labels.dropna().value_counts().items()}
    for label in expected_labels:
        counts.setdefault(label, 0)
    share = distribution(counts)
    ref = distribution(reference_counts) if reference_counts else {}
    tv = total_variation(pd.Series(share), pd.Series(ref)) if ref else float("nan")
    names = sorted(counts)
    return pd.DataFrame(
        {
            "count": [counts[k] for k in names],
            "share": [share.get(k, 0.0) for k in names],
            "reference_share": [ref.get(k, 0.0) for k in names],
            "tv_distance": [tv] * len(names),
        },
        index=pd.Index(names, name="intent", dtype=object),
    )
