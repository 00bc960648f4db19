#!/usr/bin/env bash
# Set up .venv if needed and run the test suite on the CPU. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
CUDA_VISIBLE_DEVICES="" exec .venv/bin/python -m pytest "$@"
