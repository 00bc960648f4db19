#!/usr/bin/env bash
# The quick start: set up .venv if needed, write the embedded demo data set (synthetic, VOC
# format) and run Stages I and II on it with the demo profile on the CPU, ending with the mIoU tables.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
.venv/bin/python -m wsgcn.demo_data --out Data/demo --num_train 64 --num_val 16 --seed 0
# Stage II trains on the 64 training images' GCN + CRF labels and is evaluated on the 16 val
# images, which Stage I never sees; UPPER_BOUND=1 also trains it on the 64 images' ground truth.
VOC12_ROOT=Data/demo/VOC2012 TRAIN_LIST=Data/demo/train.txt INFER_LIST=Data/demo/train.txt \
SEG_TRAIN_LIST=Data/demo/train.txt SEG_VAL_LIST=Data/demo/val.txt UPPER_BOUND=1 \
CLS_LABELS=Data/demo/cls_labels.txt WORK_DIR=Data/demo_work DEVICE=${DEVICE:-cpu} PYTHON=.venv/bin/python \
    bash train.sh --profile demo --stage all
