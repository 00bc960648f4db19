#!/usr/bin/env bash
# Every GPU-only figure in one run (at most 8 minutes on one GPU): the CUDA tests, the GCN
# benchmark, the rehearsal of the paper profile on CUDA, DeepLab's training speed in fp32, --amp
# and --channels_last. Run it first thing on a new GPU box; flags go to scripts/gpu_check.py.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
exec .venv/bin/python scripts/gpu_check.py "$@"
