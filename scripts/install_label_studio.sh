#!/usr/bin/env bash
# Label Studio for reviewing mined pairs (python -m reid_ray.review.serve) and for its test
# (tests/test_label_studio_server.py). Label Studio pins pyarrow<25 and opencv<4.13, which clash with this
# project's, so it gets its own virtual environment (.venv-label-studio/, git-ignored) and the project talks to
# it over HTTP. With --chromium also Debian's Chromium, which the test's screenshot drives through Playwright.
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
LS_VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
VENV="${LABEL_STUDIO_VENV:-.venv-label-studio}"
if [[ "${1:-}" == "--chromium" && ! -x /usr/bin/chromium ]]; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [[ ! -x "$VENV/bin/label-studio" ]] || ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('label-studio') != '$LS_VERSION')" 2>/dev/null; then
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "label-studio==$LS_VERSION"
  rm -rf "$VENV/template"
fi
# An empty, migrated database: a server started by reid_ray.review.serve on a new data dir copies it instead of
# spending a minute or more on Label Studio's migrations.
if [[ ! -f "$VENV/template/label_studio.sqlite3" ]]; then
  mkdir -p "$VENV/template"
  (cd "$VENV/template" && LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false \
    "../bin/label-studio" version --data-dir "$PWD" >migrate.log 2>&1) || { cat "$VENV/template/migrate.log"; exit 1; }
fi
echo "Label Studio $LS_VERSION in $VENV/bin/label-studio"
