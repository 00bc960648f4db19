#!/usr/bin/env bash
# The paper's path at VOC size, rehearsed on synthetic images: every step of both stages with
# the paper profile's shapes and only the iteration counts cut, then one table of seconds,
# memory and FLOPs per step (docs/cost.md).  Flags go to scripts/rehearse.py, e.g. --device cuda.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
exec .venv/bin/python scripts/rehearse.py "$@"
