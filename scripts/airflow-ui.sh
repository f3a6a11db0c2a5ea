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

mkdir -p "${AIRFLOW_HOME}"
printf '{"admin": "%s"}\n' "${SHOPFLOW_AIRFLOW_PASSWORD:-admin}" \
  > "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"

cd "${ROOT}"
"${BIN}/airflow" db migrate >/dev/null
"${BIN}/airflow" pools set dvc 1 "workspace: ingest, validate, preprocess (DVC repo lock)" >/dev/null
if [[ -n "${SHOPFLOW_TRAIN_POOL:-}" ]]; then
  "${BIN}/airflow" pools set "${SHOPFLOW_TRAIN_POOL}" "${SHOPFLOW_TRAIN_POOL_SLOTS:-1}" "training" >/dev/null
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

mkdir -p "${AIRFLOW_HOME}/logs"
"${BIN}/airflow" api-server --host 127.0.0.1 --port "${AIRFLOW_PORT}" >"${AIRFLOW_HOME}/logs/api-server.log" 2>&1 &
pids+=($!)
"${BIN}/airflow" scheduler >"${AIRFLOW_HOME}/logs/scheduler.log" 2>&1 &
pids+=($!)
"${BIN}/airflow" dag-processor >"${AIRFLOW_HOME}/logs/dag-processor.log" 2>&1 &
pids+=($!)
"${BIN}/airflow" triggerer >"${AIRFLOW_HOME}/logs/triggerer.log" 2>&1 &
pids+=($!)
(cd "${PROJECT}" && exec "${BIN}/mlflow" ui --backend-store-uri "sqlite:///${PROJECT}/mlflow.db" \
  --host 127.0.0.1 --port "${MLFLOW_PORT}") >"${AIRFLOW_HOME}/logs/mlflow-ui.log" 2>&1 &
pids+=($!)

echo "Airflow UI: http://127.0.0.1:${AIRFLOW_PORT}  (user admin, password ${SHOPFLOW_AIRFLOW_PASSWORD:-admin})"
echo "MLflow UI:  http://127.0.0.1:${MLFLOW_PORT}"
echo "Logs:       ${AIRFLOW_HOME}/logs/*.log   (Ctrl-C stops everything)"
wait -n "${pids[@]}"
echo "a component exited; see ${AIRFLOW_HOME}/logs" >&2
