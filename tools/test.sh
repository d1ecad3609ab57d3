#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, lint included.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WITH_BROWSER=1 "$ROOT/tools/setup.sh"
cd "$ROOT"
.venv/bin/ruff check edge tests bench tools
.venv/bin/python -m pytest "$@"
