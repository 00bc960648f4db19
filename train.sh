#!/usr/bin/env bash
# WSGCN Stage I, every step in order, then one table of the labels' mIoU.
#
#   bash train.sh                  # the paper's settings, on a GPU when there is one
#   bash train.sh --profile demo   # CPU-sized settings (what scripts/demo.sh runs)
#
# Environment (defaults: the original layout under Data/):
#   VOC12_ROOT  VOC-format data set           Data/VOC12/VOC2012
#   TRAIN_LIST  images to train CAM and IRNet  Data/VOC12/train_aug.txt
#   INFER_LIST  images to make labels for     Data/VOC12/train.txt
#   VAL_LIST    train_cam validation images   (unset: no validation)
#   CLS_LABELS  image-level label table       Data/VOC12/cls_labels.txt ('' = XML annotations)
#   WORK_DIR    outputs                       Data
#   DEVICE      cpu | cuda | cuda:N           (unset: cuda when available)
#   PYTHON      interpreter                   .venv/bin/python if present, else python
#   IRN_ARGS    extra flags for IRN/run_sample.py (e.g. "--num_workers 8")
#   GCN_ARGS    extra flags for the GCN scripts (e.g. "--max_epoch 100")
#   NPROC       processes per machine (GPUs); >1 runs every step under torchrun   1
#   TORCHRUN_ARGS  replaces torchrun's "--standalone" for several machines, e.g.
#               "--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint host:29400"
#
# Re-running continues where an interrupted run stopped: per-image steps skip the images whose
# outputs exist (GCN_ARGS/IRN_ARGS "--overwrite True" redoes them); add "--resume True" to
# IRN_ARGS to continue an interrupted training step from its last epoch.  Images that fail are
# listed in failures.txt in their step's output folder; the run goes on and exits with status 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

profile=paper
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --profile=*) profile=${1#--profile=}; shift ;;
        *) echo "train.sh: unknown argument $1 (use --profile NAME; IRN_ARGS/GCN_ARGS for step flags)" >&2; exit 2 ;;
    esac
done

VOC12_ROOT=${VOC12_ROOT:-Data/VOC12/VOC2012}
TRAIN_LIST=${TRAIN_LIST:-Data/VOC12/train_aug.txt}
INFER_LIST=${INFER_LIST:-Data/VOC12/train.txt}
CLS_LABELS=${CLS_LABELS-Data/VOC12/cls_labels.txt}
WORK_DIR=${WORK_DIR:-Data}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi

NPROC=${NPROC:-1}
if [ "$NPROC" -gt 1 ] || [ -n "${TORCHRUN_ARGS:-}" ]; then
    read -r -a rdzv <<< "${TORCHRUN_ARGS:---standalone}"
    launch=("$PYTHON" -m torch.distributed.run "${rdzv[@]}" --nproc_per_node "$NPROC")
else
    launch=("$PYTHON")
fi
status=0

common=(--profile "$profile" --voc12_root "$VOC12_ROOT" --work_dir "$WORK_DIR" --device "${DEVICE:-}"
        --cls_labels "$CLS_LABELS")
read -r -a irn_extra <<< "${IRN_ARGS:-}"
read -r -a gcn_extra <<< "${GCN_ARGS:-}"

echo "== IRN stage: CAMs, IR labels, IRNet, boundary map, node features, random-walk labels"
"${launch[@]}" IRN/run_sample.py "${common[@]}" --train_list "$TRAIN_LIST" --infer_list "$INFER_LIST" \
    --val_list "${VAL_LIST:-}" "${irn_extra[@]}" || status=$?
[ "$status" -le 1 ] || exit "$status"  # 2 and up: nothing usable was made (bad list, weights, crash)

echo "== GCN stage: partial pseudo labels, one GCN per image, dense CRF"
for script in GCN/make_dataset.py GCN/train.py GCN/CRF.py; do
    "${launch[@]}" "$script" "${common[@]}" --train_list "$INFER_LIST" "${gcn_extra[@]}" || {
        code=$?; [ "$code" -eq 1 ] || exit "$code"; status=1; }
done

echo "== Summary"
"$PYTHON" -m wsgcn.report --work_dir "$WORK_DIR" --voc12_root "$VOC12_ROOT" --list "$INFER_LIST" || status=1
"$PYTHON" GCN/visualize.py --work_dir "$WORK_DIR" --voc12_root "$VOC12_ROOT" --list "$INFER_LIST" \
    --cls_labels "$CLS_LABELS" --quiet True >/dev/null && echo "pictures: $WORK_DIR/visualize" || status=1
if [ "$status" -ne 0 ]; then
    echo "train.sh: some images failed; see the failures.txt files under $WORK_DIR" >&2
fi
exit "$status"
