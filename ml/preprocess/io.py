"""Reading validated partitions back as one frame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml.core.errors import InputError
from ml.core.tables import DATA_SUFFIXES, read_text_table


def read_validated(
    root: Path, dataset: str, columns: tuple[str, ...], optional: tuple[str, ...] = ()
) -> pd.DataFrame:
    """All ``root/<dataset>/date=*/*.csv`` and ``*.parquet`` files as strings, with a
    ``partition`` column.

    ``optional`` columns are kept when a file has them and are empty strings when it does not
    (an empty cell is an empty string too, never NaN).

    Validation has already checked these files; a problem here means the validated area was
    edited by hand, so the error names the file.
    """
    files = sorted(
        f for f in (root / dataset).glob("date=*/*") if f.suffix.lower() in DATA_SUFFIXES
    )
    if not files:
        raise InputError(
            f"no validated {dataset} partitions under {root / dataset}: run `python -m ml validate`"
        )
    frames = []
    for file in files:
        try:
            frame = read_text_table(file)
        except (
            UnicodeDecodeError,
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            OSError,
            ValueError,
        ) as exc:
            raise InputError(f"{file}: cannot be read: {exc}") from exc
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(f"{file}: missing column(s) {missing}")
        frame = frame[list(columns)].assign(
            **{c: frame[c] if c in frame.columns else "" for c in optional}
        )
        frame["partition"] = file.parent.name.removeprefix("date=")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
