#!/usr/bin/env bash
# Builds the self-contained example (projects/demo.yaml, synthetic data) end to end:
# data -> q15 features -> model -> int8 TFLite -> analysis/evaluation -> firmware per board.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m generator.cli build projects/demo.yaml "$@"
