#!/usr/bin/env bash
# Install what tests/browser needs: Debian's chromium (/usr/bin/chromium) and Python playwright in
# .venv. Playwright drives that chromium (executable_path); no `playwright install`, no browser
# download. Idempotent and quiet: prints one line saying what it did.
#
#   scripts/install-browser.sh
set -euo pipefail

PLAYWRIGHT_VERSION="1.65.2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${ROOT}/.venv/bin/python"
done_what=()

if [[ ! -x /usr/bin/chromium ]]; then
  sudo=()
  if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null; then
      sudo=(sudo)
    else
      echo "install-browser: /usr/bin/chromium missing and not root (no sudo): apt-get install chromium" >&2
      exit 1
    fi
  fi
  log="$(mktemp)"
  if ! { "${sudo[@]}" apt-get update -qq \
      && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium; } >"${log}" 2>&1; then
    cat "${log}" >&2
    rm -f "${log}"
    echo "install-browser: apt-get install chromium failed" >&2
    exit 1
  fi
  rm -f "${log}"
  if [[ ! -x /usr/bin/chromium ]]; then
    echo "install-browser: apt-get installed chromium but /usr/bin/chromium is missing" \
      "(apt-get install --reinstall chromium)" >&2
    exit 1
  fi
  done_what+=("installed chromium ($(/usr/bin/chromium --version 2>/dev/null | tr -s ' ' | sed 's/ *$//'))")
fi

if [[ ! -x "${PY}" ]]; then
  echo "install-browser: ${PY} missing: run make install first" >&2
  exit 1
fi
if ! "${PY}" -c "import playwright" 2>/dev/null; then
  # The project's constraints (when present) pin playwright's own dependencies too.
  constraints=()
  if [[ -f "${ROOT}/requirements/constraints.txt" ]]; then
    constraints=(-c "${ROOT}/requirements/constraints.txt")
  fi
  "${PY}" -m pip install --quiet --disable-pip-version-check "${constraints[@]}" \
    "playwright==${PLAYWRIGHT_VERSION}"
  done_what+=("installed playwright ${PLAYWRIGHT_VERSION} into .venv")
fi

if ((${#done_what[@]})); then
  msg="${done_what[0]}"
  for what in "${done_what[@]:1}"; do msg+="; ${what}"; done
  echo "install-browser: ${msg}"
else
  echo "install-browser: chromium and playwright already installed, nothing to do"
fi
