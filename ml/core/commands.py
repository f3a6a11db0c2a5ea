"""The command tree that every package's ``cli.py`` registers its steps on (``register(tree)``).

Lives in core so that a package can declare its commands without importing the dispatcher
(``ml.cli``), which imports every package.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[argparse.Namespace, Any], "dict[str, Any] | None"]
Configure = Callable[[argparse.ArgumentParser], None]


@dataclass
class _Command:
    help: str
    configure: Configure | None
    run: Handler


@dataclass
class CommandTree:
    """Steps by verb, optionally split by model family (``train intent``, ``train recommender``)."""

    verbs: dict[str, dict[str | None, _Command]] = field(default_factory=dict)
    verb_help: dict[str, str] = field(default_factory=dict)

    def add(
        self,
        verb: str,
        run: Handler,
        *,
        help: str,
        family: str | None = None,
        configure: Configure | None = None,
        verb_help: str | None = None,
    ) -> None:
        families = self.verbs.setdefault(verb, {})
        if family in families:
            raise ValueError(f"step {verb} {family or ''} registered twice")
        families[family] = _Command(help=help, configure=configure, run=run)
        if verb_help or verb not in self.verb_help:
            self.verb_help[verb] = verb_help or help
