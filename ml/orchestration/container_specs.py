"""Parsing of the container settings that arrive as environment strings (SHOPFLOW_DOCKER_MOUNTS,
SHOPFLOW_K8S_GPU_NODE_SELECTOR, SHOPFLOW_K8S_GPU_TOLERATIONS): used by the settings' validators
and by the operators in ml.orchestration.containers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def split_list(value: Any) -> Any:
    """``a,b`` from an environment variable becomes ``["a", "b"]``; lists pass unchanged."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


@dataclass(frozen=True)
class DockerMount:
    """One ``SOURCE:TARGET`` entry of SHOPFLOW_DOCKER_MOUNTS: SOURCE is a host path (bind
    mount, as the Docker engine's host sees it) or the name of a Docker volume."""

    source: str
    target: str

    @property
    def kind(self) -> str:
        return "bind" if self.source.startswith("/") else "volume"

    @classmethod
    def parse(cls, entry: str) -> DockerMount:
        parts = entry.split(":")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"docker mount {entry!r} is not SOURCE:TARGET")
        source, target = parts
        if not source.startswith("/") and not _VOLUME_NAME.match(source):
            raise ValueError(
                f"docker mount {entry!r}: SOURCE must be an absolute host path or a volume name"
            )
        if not PurePosixPath(target).is_absolute():
            raise ValueError(f"docker mount {entry!r}: TARGET must be an absolute container path")
        return cls(source, target)


def parse_node_selector(value: Any) -> Any:
    """``key=value,key2=value2`` (an environment variable) becomes a dict."""
    if not isinstance(value, str):
        return value
    selector: dict[str, str] = {}
    for entry in split_list(value):
        key, sep, label = entry.partition("=")
        if not sep or not _LABEL_KEY.match(key.strip()):
            raise ValueError(f"node selector entry {entry!r} is not label-key=value")
        selector[key.strip()] = label.strip()
    return selector


def parse_toleration(entry: str) -> dict[str, str | None]:
    """``key[=value][:Effect]`` (e.g. ``nvidia.com/gpu:NoSchedule``) as V1Toleration fields:
    with a value the taint must match it (Equal), without one any value does (Exists)."""
    spec, _, effect = entry.partition(":")
    key, sep, value = spec.partition("=")
    if not _LABEL_KEY.match(key):
        raise ValueError(f"toleration {entry!r}: {key!r} is not a taint key")
    if effect and effect not in _TAINT_EFFECTS:
        raise ValueError(f"toleration {entry!r}: effect must be one of {', '.join(_TAINT_EFFECTS)}")
    return {
        "key": key,
        "operator": "Equal" if sep else "Exists",
        "value": value if sep else None,
        "effect": effect or None,
    }
