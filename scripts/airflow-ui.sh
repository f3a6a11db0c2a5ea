#!/usr/bin/env bash
# Start Airflow (api-server + scheduler + dag-processor + triggerer) and the MLflow UI locally,
# on the embedded setup that `make demo` uses, so retraining can be triggered from the browser.
#
#   scripts/airflow-ui.sh            # foreground; Ctrl-C stops everything
#   AIRFLOW_PORT=8081 MLFLOW_PORT=5001 SHOPFLOW_PROJECT_DIR=/elsewhere scripts/airflow-ui.sh
#
# Airflow UI  http://127.0.0.1:${AIRFLOW_PORT:-8080}   login admin / ${SHOPFLOW_AIRFLOW_PASSWORD:-admin}
# MLflow UI   http://127.0.0.1:${MLFLOW_PORT:-5000}
#
# Login: Airflow 3's simple auth manager. Users come from AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS
# ("admin:admin" = user admin with role admin); their passwords from the JSON file named by
# AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE, which this script writes
# ({"admin": "<SHOPFLOW_AIRFLOW_PASSWORD>"}). Set SHOPFLOW_AIRFLOW_ALL_ADMINS=1 to skip the login
# (simple_auth_manager_all_admins: everyone is admin; local use only).
#
# Trigger: DAGs -> intent_retrain -> Trigger; the form shows the Params (epochs, learning_rate,
# sample_size, force_promote, dry_run, overrides) and refuses values outside their schemas.
# New DAGs start paused: unpause them (toggle) for schedules and asset triggers to apply.
#
# Sized to the machine: executor parallelism (LocalExecutor forks that many workers), api-server,
# dag-processor and mlflow ui worker counts come from `python -m ml.orchestration.embedded` (ml/orchestration/embedded.py,
# the same function `make demo` uses), from the CPUs this shell may use (nproc); any of those
# variables already set in the environment wins. MLflow's server job runner (huey consumers) is
# off (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false): nothing here uses it.
# Start order: mlflow ui and `airflow db migrate` together, then the api-server; the scheduler,
# dag-processor and triggerer once the api-server answers (on 2 CPUs starting all at once made
# the UI ~12 s slower). Each URL is printed once its health endpoint answers;
# SHOPFLOW_UI_START_TIMEOUT (seconds, default 120) bounds the wait.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ROOT}/.venv/bin"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"

# The project whose data, models, mlflow.db and airflow_home are shown (the demo's by default).
PROJECT="${SHOPFLOW_PROJECT_DIR:-${ROOT}}"
export SHOPFLOW_PROJECT_DIR="${PROJECT}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-${PROJECT}/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="${ROOT}/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__API__PORT="${AIRFLOW_PORT}"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:${AIRFLOW_PORT}"
# Tasks report to the api-server's execution API; it must be this one.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:${AIRFLOW_PORT}/execution/"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="${AIRFLOW_HOME}/simple_auth_manager_passwords.json"
if [[ "${SHOPFLOW_AIRFLOW_ALL_ADMINS:-0}" == "1" ]]; then
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
fi
export SHOPFLOW_MLFLOW_UI_URL="http://127.0.0.1:${MLFLOW_PORT}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GX_ANALYTICS_ENABLED=false
# Tasks run `python -m ml` and `dvc`: the venv's.
export PATH="${BIN}:${PATH}"
# Assigned first so that a failure stops the script (`eval "$(false)"` would not).
sizing="$("${BIN}/python" -m ml.orchestration.embedded)"
eval "${sizing}"

AIRFLOW_URL="http://127.0.0.1:${AIRFLOW_PORT}"
MLFLOW_URL="http://127.0.0.1:${MLFLOW_PORT}"
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "${AIRFLOW_PORT}" "${MLFLOW_PORT}"; do
  if port_in_use "${port}"; then
    echo "port ${port} is already in use (set AIRFLOW_PORT / MLFLOW_PORT)" >&2
    exit 1
  fi
done
answers() {  # URL: true once it answers with a 2xx
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
  else
    "${BIN}/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "$1" 2>/dev/null
  fi
}

mkdir -p "${AIRFLOW_HOME}"
printf '{"admin": "%s"}\n' "${SHOPFLOW_AIRFLOW_PASSWORD:-admin}" \
  > "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "${AIRFLOW_HOME}/logs"
started=${SECONDS}
echo "Starting (parallelism ${AIRFLOW__CORE__PARALLELISM}; logs in ${AIRFLOW_HOME}/logs) ..."

# MLflow does not need Airflow's database: it starts while that is migrated.
(cd "${PROJECT}" && exec "${BIN}/mlflow" ui --backend-store-uri "sqlite:///${PROJECT}/mlflow.db" \
  --host 127.0.0.1 --port "${MLFLOW_PORT}" --workers "${SHOPFLOW_MLFLOW_UI_WORKERS}") \
  >"${AIRFLOW_HOME}/logs/mlflow-ui.log" 2>&1 &
pids+=($!)

cd "${ROOT}"
"${BIN}/airflow" db migrate >/dev/null
"${BIN}/airflow" pools set dvc 1 "workspace: ingest, validate, preprocess (DVC repo lock)" >/dev/null
if [[ -n "${SHOPFLOW_TRAIN_POOL:-}" ]]; then
  "${BIN}/airflow" pools set "${SHOPFLOW_TRAIN_POOL}" "${SHOPFLOW_TRAIN_POOL_SLOTS:-1}" "training" >/dev/null
fi

"${BIN}/airflow" api-server --host 127.0.0.1 --port "${AIRFLOW_PORT}" >"${AIRFLOW_HOME}/logs/api-server.log" 2>&1 &
pids+=($!)

# Each URL is printed once its health endpoint answers; the rest of Airflow starts once the
# api-server does (new DAGs show up when the dag-processor has parsed them, seconds later).
deadline=$((started + ${SHOPFLOW_UI_START_TIMEOUT:-120}))
airflow_up="" mlflow_up=""
until [[ -n "${airflow_up}" && -n "${mlflow_up}" ]]; do
  if [[ -z "${mlflow_up}" ]] && answers "${MLFLOW_URL}/health"; then
    mlflow_up=1
    echo "MLflow UI:  ${MLFLOW_URL}   (up after $((SECONDS - started))s)"
  fi
  if [[ -z "${airflow_up}" ]] && answers "${AIRFLOW_URL}/api/v2/monitor/health"; then
    airflow_up=1
    "${BIN}/airflow" scheduler >"${AIRFLOW_HOME}/logs/scheduler.log" 2>&1 &
    pids+=($!)
    "${BIN}/airflow" dag-processor >"${AIRFLOW_HOME}/logs/dag-processor.log" 2>&1 &
    pids+=($!)
    "${BIN}/airflow" triggerer >"${AIRFLOW_HOME}/logs/triggerer.log" 2>&1 &
    pids+=($!)
    echo "Airflow UI: ${AIRFLOW_URL}   (up after $((SECONDS - started))s; user admin, password ${SHOPFLOW_AIRFLOW_PASSWORD:-admin})"
  fi
  for pid in "${pids[@]}"; do
    if ! kill -0 "${pid}" 2>/dev/null; then
      echo "a component exited while starting; see ${AIRFLOW_HOME}/logs" >&2
      exit 1
    fi
  done
  if [[ -z "${airflow_up}" || -z "${mlflow_up}" ]]; then
    if ((SECONDS >= deadline)); then
      echo "not answering after ${SHOPFLOW_UI_START_TIMEOUT:-120}s; see ${AIRFLOW_HOME}/logs" >&2
      exit 1
    fi
    sleep 0.5
  fi
done
echo "Logs:       ${AIRFLOW_HOME}/logs/*.log   (Ctrl-C stops everything)"
wait -n "${pids[@]}"
echo "a component exited; see ${AIRFLOW_HOME}/logs" >&2
exit 1
