"""Process counts of the embedded setup, sized to this machine's CPUs: the one source.

``ml.orchestration.demo.configure_environment`` puts :func:`embedded_settings` into ``os.environ``;
``scripts/airflow-ui.sh`` evals ``python -m ml.orchestration.embedded`` (``export KEY=VALUE`` lines,
skipping keys already set in its environment, so an explicit setting wins). Stock defaults are sized
for
a server: LocalExecutor forks ``[core] parallelism`` = 32 workers at start, ``mlflow ui`` runs 4
uvicorn workers and a job runner with its huey consumers (MLflow's GenAI server jobs, which
shopflow never uses). On 2 CPUs that was 55 processes and ~8.5 GiB RSS before any task ran.

Kept free of heavy imports: the UI script runs it before starting anything.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

# MLflow's server-side job execution (job runner + huey consumers): off wherever shopflow starts
# an mlflow server (UI script, test fixtures; the compose stack sets the same variable).
MLFLOW_NO_JOB_EXECUTION = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def available_cpus() -> int:
    """CPUs this process may run on (what ``nproc`` prints: honours affinity / cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def embedded_settings(cpus: int | None = None) -> dict[str, str]:
    """Environment settings for the embedded Airflow + MLflow processes on ``cpus`` CPUs
    (default: :func:`available_cpus`).

    * ``AIRFLOW__CORE__PARALLELISM``: LocalExecutor worker processes (all forked at scheduler
      start) = concurrently running tasks; tasks here are CPU-bound training and scoring, so one
      per CPU, at least 2 (both retrain DAGs can run at once), at most Airflow's default 32.
    * ``AIRFLOW__API__WORKERS``, ``AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES`` and
      ``SHOPFLOW_MLFLOW_UI_WORKERS`` (``mlflow ui --workers``): one per 4 CPUs, 1 to 4; one
      person's browser and four DAG files need no more.
    * MLflow server job execution off (:data:`MLFLOW_NO_JOB_EXECUTION`).
    """
    n = available_cpus() if cpus is None else cpus
    if n < 1:
        raise ValueError(f"cpus must be >= 1, got {n}")
    small = str(_clamp(n // 4, 1, 4))
    return {
        "AIRFLOW__CORE__PARALLELISM": str(_clamp(n, 2, 32)),
        "AIRFLOW__API__WORKERS": small,
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": small,
        "SHOPFLOW_MLFLOW_UI_WORKERS": small,
        **MLFLOW_NO_JOB_EXECUTION,
    }


def shell_exports(settings: dict[str, str], environ: dict[str, str] | None = None) -> str:
    """``export KEY=VALUE`` lines for ``eval`` in bash; keys set in ``environ`` are left out."""
    present = os.environ if environ is None else environ
    return "".join(
        f"export {key}={shlex.quote(value)}\n"
        for key, value in settings.items()
        if key not in present
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml.orchestration.embedded",
        description="Print the embedded setup's process settings as `export` lines "
        "(keys already in the environment are left out).",
    )
    parser.add_argument("--cpus", type=int, default=None, help="size for N CPUs (default: nproc)")
    args = parser.parse_args(argv)
    if args.cpus is not None and args.cpus < 1:
        parser.error(f"--cpus must be >= 1, got {args.cpus}")
    sys.stdout.write(shell_exports(embedded_settings(args.cpus)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
