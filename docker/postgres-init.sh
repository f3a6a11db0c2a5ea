#!/usr/bin/env bash
# Runs once on an empty data volume: the MLflow backend store gets its own database.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"${MLFLOW_DB}\" OWNER \"${POSTGRES_USER}\";"
