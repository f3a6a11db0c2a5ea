"""Online serving under load: `python -m ml serve` and `mlflow models serve`, same model version.

One run on this machine, one intent model version (the registry's `champion`) behind both:
  shopflow  `python -m ml serve` (FastAPI + uvicorn, one process, dynamic micro-batching),
            POST /v1/intent {"texts": [text]} with the bearer token set;
  mlflow    `mlflow models serve -m models:/<name>@champion --env-manager local --workers 1`
            (one uvicorn worker: the machine's size; MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false),
            POST /invocations {"dataframe_split": {"columns": ["text"], "data": [[text]]}}.
Each server runs alone (the other is stopped), so both get the same CPUs. Closed-loop locust
users (locust as a library, FastHttpUser, no think time) at each concurrency level for
--duration seconds after --warmup seconds; one utterance per request, drawn in turn from the
processed test split (or a fixed list of shopper phrases with --tracking-uri). Reported per level:
throughput (completed requests / s), p50/p95/p99/max latency from every request's own time (not
locust's rounded buckets) and failures (non-200 or a response without one prediction). Also
each server's seconds until ready and its peak RSS (process + children).

Swap: during load on shopflow (--swap-users), the other version is promoted with the project's
CLI (`python -m ml registry promote intent --version N --force`, which smoke-tests the version
first) and then rolled back (`registry rollback intent`). Reported: failed requests over the
whole scenario (goal zero); for each swap the seconds from the alias moving (the time of the
promotion-history event the command appends right after moving it) until the first response
from the new version (the server polls the registry every serving.poll_interval_s, so expect
up to that plus the load; GET /v1/models confirms it); requests answered by each version; p99 in
a steady window before the promotion against p99 while a swap is under way (alias moved until
2 s after the new version's first answer). The registry commands run at `nice 19`: on 2 shared
cores their model load would otherwise be counted as the server's swap cost (in production they
run on an Airflow worker).

The model: without --tracking-uri a throw-away store in --workdir, built with the project's own
CLI on a small budget: ingest (one synthetic shop day), validate, preprocess intent, train intent
twice (two versions, different seeds), registry promote v1. With --tracking-uri an existing
store is used: its intent champion is served and the swap promotes --swap-version (default: the
newest other version) and rolls back, which appends both events to that store's promotion
history: point it at a scratch copy.

    .venv/bin/python bench/serving_load.py                     # 60 s per level: 1, 8, 32 users
    .venv/bin/python bench/serving_load.py --duration 10       # a smoke run
    .venv/bin/python bench/serving_load.py --workdir /tmp/store --duration 10   # keeps the store
    .venv/bin/python bench/serving_load.py --workdir /tmp/store \
        --tracking-uri sqlite:////tmp/store/mlflow.db          # reuses it

Needs locust (`pip install -c requirements/constraints.txt -e ".[bench]"`; `make bench` does).
Prints one table and writes bench/results/serving_load.json (--out to change).
"""

# ruff: noqa: E402  (the imports follow gevent's patching on purpose)
from __future__ import annotations

# locust runs on gevent: patch the standard library before anything imports ssl or socket
# (requests would otherwise load an unpatched ssl and locust's import would recurse).
from gevent import monkey

monkey.patch_all()

import argparse
import itertools
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import numpy as np
import psutil
import requests
from locust import FastHttpUser, constant, task
from locust.env import Environment

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "serving_load.json"
BIN = Path(sys.executable).parent
# Used when the store is not built here (no processed test split to draw texts from).
PHRASES = [
    "where is my order",
    "I want to cancel my order ORD-20931",
    "can I get a refund for the broken kettle",
    "is the blue wool scarf cheaper anywhere else",
    "my parcel says delivered but nothing arrived",
    "how do I change the delivery address",
    "what's the weather in Paris tomorrow",
    "do you have these running shoes in size 44",
    "the package was damaged, I need a replacement",
    "track order #88123 please",
    "compare the price of the two coffee grinders",
    "I was charged twice for the same thing",
]
SETUP_SETS = ["generator.days=1", "validation.data_docs=false"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured per level")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--users", default="1,8,32", help="concurrency levels, comma-separated")
    parser.add_argument("--tracking-uri", help="an existing store (default: build one)")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--train-samples", type=int, default=400, help="setup: training rows")
    parser.add_argument("--epochs", type=int, default=1, help="setup: training epochs")
    parser.add_argument("--swap-users", type=int, default=8)
    parser.add_argument("--swap-version", help="version promoted during the swap")
    parser.add_argument("--swap-hold", type=float, default=10.0, help="seconds around each swap")
    parser.add_argument("--poll-interval", type=float, help="serving.poll_interval_s override")
    parser.add_argument("--no-swap", action="store_true")
    parser.add_argument(
        "--servers",
        default="shopflow,shopflow-torch,mlflow",
        help="which to run (swap: with shopflow; shopflow-torch: serving.fast_variant=off)",
    )
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- the project's CLI


def base_env(tracking_uri: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        GX_ANALYTICS_ENABLED="false",
        DVC_NO_ANALYTICS="1",
        TQDM_DISABLE="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.pop("SHOPFLOW_SERVING_TOKEN", None)
    return env


def run_ml(
    argv: list[str], workdir: Path, env: dict[str, str], sets: list[str], *, nice: bool = False
) -> dict[str, Any]:
    """`python -m ml <argv>` in ``workdir`` with the repository's params.yaml; its JSON result."""
    out = workdir / "logs" / f"{'-'.join(argv[:2])}-{time.monotonic_ns()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ml", *argv, "--params", str(REPO / "params.yaml")]
    for entry in sets:
        cmd += ["--set", entry]
    cmd = (["nice", "-n", "19"] if nice else []) + [*cmd, "--output-json", str(out)]
    with open(out.with_suffix(".log"), "w") as log:
        done = subprocess.run(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = out.with_suffix(".log").read_text()[-2000:]
        raise SystemExit(f"python -m ml {' '.join(argv)} failed ({done.returncode}):\n{tail}")
    return json.loads(out.read_text())


def build_store(args: argparse.Namespace, workdir: Path, env: dict[str, str]) -> dict[str, float]:
    """A store with two intent versions, v1 champion; returns each step's seconds."""
    sets = [
        *SETUP_SETS,
        f"intent.train.epochs={args.epochs}",
        f"intent.train.max_train_samples={args.train_samples}",
    ]
    steps = {
        "ingest": ["ingest"],
        "validate": ["validate", "--dataset", "utterances"],
        "preprocess": ["preprocess", "intent"],
        "train_v1": ["train", "intent", "--no-resume"],
        # Evaluate checks the ONNX export and tags the version (what serving's auto reads).
        "evaluate_v1": ["evaluate", "intent"],
        # A second version for the swap: same recipe, another seed.
        "train_v2": ["train", "intent", "--no-resume", "--set", "intent.train.seed=14"],
        "evaluate_v2": ["evaluate", "intent"],
        "promote_v1": ["registry", "promote", "intent", "--version", "1", "--force"],
    }
    seconds = {}
    for name, argv in steps.items():
        print(f"[setup] {name} ...", flush=True)
        started = time.perf_counter()
        run_ml(argv, workdir, env, sets)
        seconds[name] = round(time.perf_counter() - started, 1)
    return seconds


def load_texts(workdir: Path) -> list[str]:
    test = workdir / "data" / "processed" / "intent" / "test.parquet"
    if test.is_file():
        import pandas as pd

        texts = [t for t in pd.read_parquet(test, columns=["text"])["text"] if t]
        if texts:
            return texts
    return PHRASES


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    ready_seconds: float = 0.0
    rss_peak_mb: float = 0.0
    _sampler: Any = None

    def rss_mb(self) -> float:
        try:
            proc = psutil.Process(self.process.pid)
            tree = [proc, *proc.children(recursive=True)]
            return sum(p.memory_info().rss for p in tree) / 2**20
        except psutil.Error:
            return 0.0

    def sample_memory(self) -> None:
        while self.process.poll() is None:
            self.rss_peak_mb = max(self.rss_peak_mb, self.rss_mb())
            gevent.sleep(0.5)

    def cpu_seconds(self) -> float:
        try:
            proc = psutil.Process(self.process.pid)
            tree = [proc, *proc.children(recursive=True)]
            return sum(sum(p.cpu_times()[:2]) for p in tree)
        except psutil.Error:
            return 0.0


@contextmanager
def running(
    name: str, cmd: list[str], env: dict[str, str], cwd: Path, ready_path: str, timeout: float
) -> Iterator[Server]:
    """Start ``cmd`` (its own process group), wait until ``ready_path`` answers 200, stop it
    (SIGTERM to the group we started, SIGKILL after 20 s) on the way out."""
    port = int(cmd[cmd.index("--port") + 1])
    log = cwd / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    server._sampler = gevent.spawn(server.sample_memory)
    started = time.perf_counter()
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(
                    f"{name} exited ({process.returncode}):\n{log.read_text()[-3000:]}"
                )
            try:
                if requests.get(server.url + ready_path, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"{name}: {ready_path} not 200 after {timeout:.0f} s ({log})")
            gevent.sleep(0.5)
        server.ready_seconds = round(time.perf_counter() - started, 1)
        print(f"[{name}] ready after {server.ready_seconds} s at {server.url}", flush=True)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        server._sampler.kill()


# ----------------------------------------------------------------------------- load


@dataclass
class Target:
    """One endpoint: how to build a request body and judge a response (None = good)."""

    name: str
    path: str
    body: Callable[[str], dict[str, Any]]
    check: Callable[[Any], str | None]
    headers: dict[str, str] = field(default_factory=dict)
    version_of: Callable[[Any], str | None] = lambda _: None


def shopflow_target(token: str) -> Target:
    def check(payload: Any) -> str | None:
        predictions = payload.get("predictions") if isinstance(payload, dict) else None
        if not isinstance(predictions, list) or len(predictions) != 1:
            return "no single prediction"
        return None if "label" in predictions[0] else "prediction without a label"

    return Target(
        "shopflow",
        "/v1/intent",
        lambda text: {"texts": [text]},
        check,
        {"Authorization": f"Bearer {token}"},
        lambda payload: str(payload["model"]["version"]),
    )


def mlflow_target() -> Target:
    def check(payload: Any) -> str | None:
        predictions = payload.get("predictions") if isinstance(payload, dict) else None
        return None if isinstance(predictions, list) and len(predictions) == 1 else "no prediction"

    return Target(
        "mlflow",
        "/invocations",
        lambda text: {"dataframe_split": {"columns": ["text"], "data": [[text]]}},
        check,
    )


@dataclass
class Sample:
    start: float  # epoch seconds
    ms: float
    ok: bool
    version: str | None = None
    error: str | None = None


class Load:
    """Closed-loop locust users against one target, every request kept as a Sample."""

    def __init__(self, url: str, target: Target, texts: list[str], users: int) -> None:
        self.samples: list[Sample] = []
        cycle = itertools.cycle(texts)
        samples = self.samples

        class Shopper(FastHttpUser):
            host = url
            wait_time = constant(0)

            @task
            def ask(self) -> None:
                started = time.time()
                with self.client.post(
                    target.path,
                    json=target.body(next(cycle)),
                    headers=target.headers,
                    name=target.path,
                    catch_response=True,
                ) as resp:
                    ms = (time.time() - started) * 1000
                    if resp.status_code != 200:
                        problem: str | None = f"HTTP {resp.status_code}"
                        payload = None
                    else:
                        try:
                            payload = resp.json()
                            problem = target.check(payload)
                        except (ValueError, KeyError, TypeError) as exc:
                            payload, problem = None, f"bad JSON: {exc}"
                    version = None
                    if problem is None:
                        resp.success()
                        version = target.version_of(payload)
                    else:
                        resp.failure(problem)
                    samples.append(Sample(started, ms, problem is None, version, problem))

        self.env = Environment(user_classes=[Shopper], host=url)
        self.runner = self.env.create_local_runner()
        self.users = users

    def __enter__(self) -> Load:
        self.runner.start(self.users, spawn_rate=self.users)
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.quit()

    def window(self, begin: float, end: float) -> list[Sample]:
        """Requests started at or after ``begin`` and finished by ``end``."""
        return [s for s in self.samples if s.start >= begin and s.start + s.ms / 1000 <= end]


def summarise(samples: list[Sample], seconds: float) -> dict[str, Any]:
    good = np.array([s.ms for s in samples if s.ok]) if samples else np.array([])
    failures = [s for s in samples if not s.ok]
    errors: dict[str, int] = {}
    for s in failures:
        errors[str(s.error)] = errors.get(str(s.error), 0) + 1
    pct = (lambda q: round(float(np.percentile(good, q)), 1)) if good.size else (lambda q: None)
    return {
        "requests": len(samples),
        "failures": len(failures),
        "errors": errors,
        "rps": round(len(samples) / seconds, 1) if seconds > 0 else None,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(float(good.max()), 1) if good.size else None,
        "mean_ms": round(float(good.mean()), 1) if good.size else None,
    }


def measure(server: Server, target: Target, texts: list[str], users: int, args: Any) -> dict:
    cpu_before = server.cpu_seconds()
    with Load(server.url, target, texts, users) as load:
        gevent.sleep(args.warmup)
        begin = time.time()
        gevent.sleep(args.duration)
        end = time.time()
    result = {"users": users, **summarise(load.window(begin, end), end - begin)}
    result["server_cpu_seconds"] = round(server.cpu_seconds() - cpu_before, 1)
    print(f"[{server.name}] {users:>3} users: {result}", flush=True)
    return result


# ----------------------------------------------------------------------------- swap


def served_model(server: Server, token: str) -> dict[str, Any]:
    reply = requests.get(
        server.url + "/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    reply.raise_for_status()
    return next((m for m in reply.json()["models"] if m["family"] == "intent"), {})


def served_version(server: Server, token: str) -> str | None:
    version = served_model(server, token).get("version")
    return None if version is None else str(version)


def wait_served(server: Server, token: str, version: str, timeout: float) -> float:
    """Poll GET /v1/models until ``version`` is served; the epoch time it was first seen."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if served_version(server, token) == version:
            return time.time()
        gevent.sleep(0.1)
    raise SystemExit(f"v{version} not served {timeout:.0f} s after the alias moved")


def alias_moved_at(workdir: Path, env: dict[str, str], action: str, version: str) -> float:
    """When the registry moved `champion`: the history event the same command appended right
    after moving it (`registry history`; the command itself returns later)."""
    events = run_ml(["registry", "history", "intent"], workdir, env, [])["events"]
    for event in reversed(events):
        if event["action"] == action and str(event["to_version"]) == version:
            return datetime.fromisoformat(event["when"]).timestamp()
    raise SystemExit(f"no {action} to v{version} in the promotion history")


def first_answer(load: Load, version: str, after: float) -> float | None:
    """When the first response from ``version`` arrived, among requests started after ``after``."""
    done = [
        s.start + s.ms / 1000 for s in load.samples if s.version == version and s.start >= after
    ]
    return min(done, default=None)


def one_swap(
    load: Load, server: Server, token: str, cli: list[str], to: str, ctx: dict[str, Any]
) -> dict[str, Any]:
    """Run the registry command ``cli`` under load; how long until ``to`` answered."""
    args, workdir, env = ctx["args"], ctx["workdir"], ctx["env"]
    began = time.time()
    run_ml(cli, workdir, env, [], nice=True)
    returned = time.time()
    moved = alias_moved_at(workdir, env, cli[1], to)
    # A poll, the load and the check, generously; /v1/models confirms what the stream shows.
    wait_served(server, token, to, args.poll_interval_s * 3 + 120)
    while (answered := first_answer(load, to, moved)) is None:
        gevent.sleep(0.1)
    return {
        "command": " ".join(cli[:3]),
        "command_s": round(returned - began, 1),
        "alias_moved": moved,
        "first_answer": answered,
        "served_after_s": round(answered - moved, 2),
    }


def swap(
    server: Server, token: str, texts: list[str], versions: tuple[str, str], ctx: dict[str, Any]
) -> dict[str, Any]:
    """Promote ``new`` and roll back to ``old`` while ``--swap-users`` users keep asking."""
    args = ctx["args"]
    old, new = versions
    reason = "serving load bench: swap under load"
    promote = ["registry", "promote", "intent", "--version", new, "--force", "--reason", reason]
    rollback = ["registry", "rollback", "intent", "--reason", reason]
    with Load(server.url, shopflow_target(token), texts, args.swap_users) as load:
        gevent.sleep(args.warmup)
        steady_begin = time.time()
        gevent.sleep(args.swap_hold)
        steady_end = time.time()
        swaps = [one_swap(load, server, token, promote, new, ctx)]
        gevent.sleep(args.swap_hold)
        swaps.append(one_swap(load, server, token, rollback, old, ctx))
        gevent.sleep(args.swap_hold)
        end = time.time()
    everything = load.window(steady_begin, end)
    # While a swap is under way: from the alias moving until 2 s after the new version's first
    # answer (the poll, the load beside the serving model, the switch, its first batches).
    during: list[Sample] = []
    for step in swaps:
        during += load.window(step["alias_moved"], step["first_answer"] + 2)
    by_version: dict[str, int] = {}
    for sample in everything:
        if sample.version:
            by_version[sample.version] = by_version.get(sample.version, 0) + 1
    return {
        "users": args.swap_users,
        "from_version": old,
        "to_version": new,
        "poll_interval_s": args.poll_interval_s,
        "failed_requests": sum(not sample.ok for sample in everything),
        "new_served_after_s": swaps[0]["served_after_s"],
        "rollback_served_after_s": swaps[1]["served_after_s"],
        "steps": swaps,
        "responses_by_version": by_version,
        "all": summarise(everything, end - steady_begin),
        "steady": summarise(load.window(steady_begin, steady_end), steady_end - steady_begin),
        "during_swaps": summarise(
            during, sum(step["first_answer"] + 2 - step["alias_moved"] for step in swaps)
        ),
    }


# ----------------------------------------------------------------------------- report


def print_table(out: dict[str, Any]) -> None:
    model = out["model"]
    print(f"\nintent model {model['name']} v{model['version']}, one utterance per request; "
          f"{out['machine']['cpus']} CPUs shared by server and load generator")  # fmt: skip
    head = (
        f"{'server (variant)':<28}{'users':>6}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    )
    print(head + f"{'max ms':>9}{'failed':>8}{'RSS MiB':>9}")
    for name, server in out["servers"].items():
        label = f"{name} ({server['variant']})" if server.get("variant") else name
        for row in server["levels"]:
            print(
                f"{label:<28}{row['users']:>6}{row['rps']:>9}{row['p50_ms']!s:>9}"
                f"{row['p95_ms']!s:>9}{row['p99_ms']!s:>9}{row['max_ms']!s:>9}"
                f"{row['failures']:>8}{server['rss_peak_mb']:>9.0f}"
            )
    sw = out.get("swap")
    if sw:
        print(
            f"swap v{sw['from_version']} -> v{sw['to_version']} -> v{sw['from_version']} under "
            f"{sw['users']} users: {sw['all']['requests']} requests, {sw['failed_requests']} "
            f"failed; new version served {sw['new_served_after_s']} s after the alias moved, "
            f"rollback {sw['rollback_served_after_s']} s (poll interval {sw['poll_interval_s']} "
            f"s); p99 {sw['steady']['p99_ms']} ms steady, {sw['during_swaps']['p99_ms']} ms "
            f"during the swaps (max {sw['during_swaps']['max_ms']} ms); responses by version "
            f"{sw['responses_by_version']}"
        )


# ----------------------------------------------------------------------------- main


def registry_status(workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    return run_ml(["registry", "status", "intent"], workdir, env, [])


def bench_shopflow(
    ctx: dict[str, Any],
    texts: list[str],
    status: dict[str, Any],
    fast_variant: str = "auto",
    with_swap: bool = True,
) -> dict:
    """Our server; fast_variant "off" serves the torch model even when the version has a
    checked ONNX export (the same model code as mlflow models serve runs)."""
    args, workdir, env = ctx["args"], ctx["workdir"], ctx["env"]
    token = secrets.token_hex(16)
    cmd = [sys.executable, "-m", "ml", "serve", "--params", str(REPO / "params.yaml")]
    cmd += ["--host", "127.0.0.1", "--port", str(free_port())]
    # Only the intent family: the store holds no recommender, and /readyz waits for every
    # family served.
    for entry in (
        "serving.families=[intent]",
        f"serving.prediction_log_dir={workdir / 'predictions'}",
        f"serving.poll_interval_s={args.poll_interval_s}",
        f"serving.fast_variant={fast_variant}",
    ):
        cmd += ["--set", entry]
    result: dict[str, Any] = {"command": " ".join(cmd[1:])}
    with running(
        "shopflow", cmd, {**env, "SHOPFLOW_SERVING_TOKEN": token}, workdir, "/readyz",
        args.ready_timeout,
    ) as server:  # fmt: skip
        served = served_model(server, token)
        version = None if served.get("version") is None else str(served["version"])
        result["variant"] = served.get("variant")
        if version != status["champion"]:
            raise SystemExit(f"shopflow serves v{version}, the champion is v{status['champion']}")
        target = shopflow_target(token)
        result["levels"] = [measure(server, target, texts, n, args) for n in args.levels]
        others = [v for v in map(str, status["versions"]) if v != status["champion"]]
        new = args.swap_version or (others[-1] if others else None)
        if args.no_swap or not with_swap or new is None:
            result["swap"] = None if args.no_swap or not with_swap else "skipped: one version"
        else:
            print(f"[shopflow] swap v{status['champion']} -> v{new} -> back", flush=True)
            result["swap"] = swap(server, token, texts, (status["champion"], new), ctx)
    result.update(ready_seconds=server.ready_seconds, rss_peak_mb=round(server.rss_peak_mb))
    return result


def bench_mlflow(ctx: dict[str, Any], texts: list[str], status: dict[str, Any]) -> dict:
    args, workdir, env = ctx["args"], ctx["workdir"], ctx["env"]
    uri = f"models:/{status['model']}@champion"
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local"]
    cmd += ["--host", "127.0.0.1", "--port", str(free_port()), "--workers", "1"]
    result: dict[str, Any] = {"command": " ".join(cmd[1:])}
    mlflow_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with running("mlflow", cmd, mlflow_env, workdir, "/ping", args.ready_timeout) as server:
        # @champion is resolved when the server starts: it must still be the same version.
        if registry_status(workdir, env)["champion"] != status["champion"]:
            raise SystemExit("the champion moved while mlflow models serve started")
        target = mlflow_target()
        result["levels"] = [measure(server, target, texts, n, args) for n in args.levels]
    result.update(ready_seconds=server.ready_seconds, rss_peak_mb=round(server.rss_peak_mb))
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.levels = [int(n) for n in args.users.split(",")]
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="shopflow-serving-load-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tracking_uri = args.tracking_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    env = base_env(tracking_uri)
    setup = None if args.tracking_uri else build_store(args, workdir, env)
    if args.poll_interval is None:
        from ml.core.config import load_params  # after the gevent patch: no socket use here

        args.poll_interval_s = load_params(REPO / "params.yaml").serving.poll_interval_s
    else:
        args.poll_interval_s = args.poll_interval
    status = registry_status(workdir, env)
    if not status.get("champion"):
        raise SystemExit(f"{status['model']} has no champion in {tracking_uri}")
    texts = load_texts(workdir)
    ctx = {"args": args, "workdir": workdir, "env": env}
    out: dict[str, Any] = {
        "model": {"name": status["model"], "version": status["champion"]},
        "settings": {
            k: v for k, v in vars(args).items() if k not in {"out", "workdir"} and v is not None
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "tracking_uri": tracking_uri,
        "workdir": str(workdir),
        "setup_seconds": setup,
        "texts": len(texts),
        "servers": {},
        "swap": None,
    }
    servers = args.servers.split(",")
    if "shopflow" in servers:
        out["servers"]["shopflow"] = bench_shopflow(ctx, texts, status)
        out["swap"] = out["servers"]["shopflow"].pop("swap")
    if "shopflow-torch" in servers:
        torch_only = bench_shopflow(ctx, texts, status, fast_variant="off", with_swap=False)
        torch_only.pop("swap")
        out["servers"]["shopflow-torch"] = torch_only
    if "mlflow" in servers:
        out["servers"]["mlflow"] = bench_mlflow(ctx, texts, status)
    print_table(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
