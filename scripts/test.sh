#!/usr/bin/env bash
# Runs the whole test suite (tests that need ../shared/data skip if it is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m pytest -q "$@"
