#!/usr/bin/env bash
# `make lock`: rewrite dvc.lock as the committed dvc.lock means it, "the result of `dvc repro` of
# the whole pipeline with the committed params.yaml and code".
#
# It runs every stage in a temporary copy of this working tree's tracked and not-ignored files
# (what a commit of it would hold: no data/, models/, reports/, mlflow.db, DVC cache or local
# DVC config), with the copy's own MLflow SQLite store, so nothing here is touched but dvc.lock:
# not your data, not your models, not your model registry. Then commit dvc.lock together with
# the code and params change it describes (tests/pipeline/test_dvc_lock.py checks they agree).
#
# KEEP_WORKDIR=1 keeps the copy afterwards (it is always kept when the run fails).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
venv_bin="${VENV_BIN:-$repo/.venv/bin}"
work="$(mktemp -d "${TMPDIR:-/tmp}/shopflow-lock.XXXXXX")"
started=$SECONDS
done_ok=0

finish() {
  if [[ $done_ok == 1 && ${KEEP_WORKDIR:-0} != 1 ]]; then
    rm -rf "$work"
  else
    echo "the copy is kept in $work" >&2
  fi
}
trap finish EXIT

cd "$repo"
if [[ -n "$(git status --porcelain -- . ':!dvc.lock')" ]]; then
  echo "note: uncommitted changes are in the copy: commit dvc.lock together with them" >&2
fi
git ls-files -z -co --exclude-standard |
  while IFS= read -r -d '' path; do [[ -f $path ]] && printf '%s\0' "$path"; done |
  tar --null -T - -cf - | tar -xf - -C "$work"

cd "$work"
rm -f dvc.lock
git -c init.defaultBranch=main init -q
git add -A
git -c user.name="make lock" -c user.email=lock@localhost commit -qm "make lock"

export PATH="$venv_bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GX_ANALYTICS_ENABLED=false DVC_NO_ANALYTICS=1
export PYTHONUNBUFFERED=1
# The copy's own tracking store and registry (the variable wins over params.yaml's).
export MLFLOW_TRACKING_URI="sqlite:///$work/mlflow.db"
unset MLFLOW_REGISTRY_URI

echo "dvc repro of every stage in $work ..."
dvc repro
cp dvc.lock "$repo/dvc.lock"
done_ok=1

took=$((SECONDS - started))
printf 'dvc.lock refreshed in %dm%02ds\n' $((took / 60)) $((took % 60))
git -C "$repo" diff --stat -- dvc.lock
