"""`python -m ml serve`: the HTTP model server (uvicorn, in this process).

Settings come from params.yaml's ``serving`` section (``--set serving.key=value``); ``--host`` and
``--port`` win over it. The optional bearer token is read from ``SHOPFLOW_SERVING_TOKEN``.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from ml.core.errors import ConfigError
from ml.core.families import FAMILY_NAMES

if TYPE_CHECKING:
    from ml.core.commands import CommandTree
    from ml.core.config import Params

TOKEN_ENV = "SHOPFLOW_SERVING_TOKEN"


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="interface to listen on (default: serving.host)")
    parser.add_argument("--port", type=int, help="TCP port (default: serving.port)")


def serving_params(params: Params, host: str | None, port: int | None) -> Params:
    """``params`` with the command line's host/port applied and the families checked."""
    unknown = [f for f in params.serving.families if f not in FAMILY_NAMES]
    if unknown:
        raise ConfigError(
            f"serving.families: unknown {unknown}; expected any of {list(FAMILY_NAMES)}"
        )
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"--port {port}: expected 1..65535")
    update = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    serving = params.serving.model_copy(update=update)
    return params.model_copy(update={"serving": serving})


def _serve(args: argparse.Namespace, params: Params) -> dict[str, Any] | None:
    import uvicorn

    from ml.serving.app import create_app

    params = serving_params(params, args.host, args.port)
    app = create_app(params, token=os.environ.get(TOKEN_ENV) or None)
    # One process: the models live in it and swap in place; scale out with more processes.
    uvicorn.run(
        app,
        host=params.serving.host,
        port=params.serving.port,
        log_level="debug" if getattr(args, "verbose", False) else "info",
        timeout_graceful_shutdown=10,
    )
    return None


def register(tree: CommandTree) -> None:
    tree.add(
        "serve",
        _serve,
        configure=_configure,
        help="serve the registry's champions over HTTP (intent, recommendations; hot swap)",
    )
