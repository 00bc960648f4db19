#!/usr/bin/env bash
# The quick start: set up .venv if needed, write the embedded demo data set (synthetic, VOC
# format) and run Stage I on it with the demo profile on the CPU, ending with the mIoU table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
.venv/bin/python -m wsgcn.demo_data --out Data/demo --num_train 64 --num_val 16 --seed 0
VOC12_ROOT=Data/demo/VOC2012 TRAIN_LIST=Data/demo/train.txt INFER_LIST=Data/demo/train.txt \
CLS_LABELS=Data/demo/cls_labels.txt WORK_DIR=Data/demo_work DEVICE=${DEVICE:-cpu} PYTHON=.venv/bin/python \
    bash train.sh --profile demo
