#!/usr/bin/env bash
# The README's test command: install what the tests need, then run the whole suite.
# Debian's Chromium drives the real-browser tests; Playwright never downloads a browser of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
  fi
fi
command -v chromium >/dev/null 2>&1 || echo "note: no chromium found; the browser tests will be skipped" >&2

python3 -m pip install -q -r requirements-dev.txt
# The layers in the folder tree are true: contracts in pyproject.toml [tool.importlinter].
lint-imports
python3 -m pytest -q "$@"
