#!/usr/bin/env bash
# WSGCN, every step in order, then one table of the labels' mIoU.
#
#   bash train.sh                  # Stage I: pseudo labels, with the paper's settings
#   bash train.sh --stage all      # Stage I on SEG_TRAIN_LIST too, then Stage II (DeepLab-v2)
#   bash train.sh --stage 2        # Stage II alone, on the pseudo labels already made
#   bash train.sh --profile demo   # CPU-sized settings (what scripts/demo.sh runs)
#   DATASET=coco14 bash train.sh --profile coco   # MS COCO 2014's settings (docs/datasets.md)
#
# Environment (defaults: the original layout under Data/):
#   DATASET     voc12, coco14 or PATH.json     voc12 (docs/datasets.md)
#   DATA_ROOT   the data set's root folder     (unset: VOC12_ROOT for voc12, Data/COCO14 for coco14,
#                                               the description's folder for a JSON file)
#   VOC12_ROOT  VOC-format data set           Data/VOC12/VOC2012
#   TRAIN_LIST  images to train CAM and IRNet  Data/VOC12/train_aug.txt
#   INFER_LIST  images to make labels for     Data/VOC12/train.txt
#   VAL_LIST    train_cam validation images   (unset: no validation)
#   CLS_LABELS  image-level label table       voc12: Data/VOC12/cls_labels.txt ('' = XML annotations);
#                                             others: '' = the data set's own (coco14: DATA_ROOT/cls_labels.txt)
#   WORK_DIR    outputs                       Data
#   DEVICE      cpu | cuda | cuda:N           (unset: cuda when available)
#   PYTHON      interpreter                   .venv/bin/python if present, else python
#   IRN_ARGS    extra flags for IRN/run_sample.py (e.g. "--num_workers 8")
#   CAM_DIR     CAMs of another method (IRNet's <name>.npy dicts or .npz): imported instead of
#               training and running the CAM network; CAM_ARGS: flags for IRN/import_cams.py
#               (e.g. "--allow_pickle True" for .npy files)
#   GCN_ARGS    extra flags for the GCN scripts (e.g. "--max_epoch 100")
#   NPROC       processes per machine (GPUs); >1 runs every step under torchrun   1
#   TORCHRUN_ARGS  replaces torchrun's "--standalone" for several machines, e.g.
#               "--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint host:29400"
# Stage II (--stage 2 or all):
#   SEG_TRAIN_LIST  images DeepLab trains on (their GCN + CRF labels)  Data/VOC12/train_aug.txt
#   SEG_VAL_LIST    images DeepLab is evaluated on                     Data/VOC12/val.txt
#   DEEPLAB_ARGS    extra flags for DeepLab/train.py and DeepLab/infer.py (e.g. "--backbone torchvision")
#   UPPER_BOUND     1: also train on the ground truth of SEG_TRAIN_LIST (the fully supervised bound)
#   The paper profile starts DeepLab from WORK_DIR/sess/deeplabv1_resnet101-coco.pth, which
#   DeepLab/convert_caffemodel.py makes from the DeepLab authors' init.caffemodel (README, Stage II).
#
# Re-running continues where an interrupted run stopped: per-image steps skip the images whose
# outputs exist (GCN_ARGS/IRN_ARGS "--overwrite True" redoes them); add "--resume True" to
# IRN_ARGS to continue an interrupted training step from its last epoch.  Images that fail are
# listed in failures.txt in their step's output folder; the run goes on and exits with status 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

profile=paper
stage=1
while [ $# -gt 0 ]; do
    case "$1" in
        # A flag last on the line has no value: say what it takes (set -u would only say "$2: unbound").
        --profile) [ $# -ge 2 ] || { echo "train.sh: --profile needs a value: paper, coco or demo (--stage 2: also imagenet)" >&2; exit 2; }
                   profile=$2; shift 2 ;;
        --profile=*) profile=${1#--profile=}; shift ;;
        --stage) [ $# -ge 2 ] || { echo "train.sh: --stage needs a value: 1, 2 or all" >&2; exit 2; }
                 stage=$2; shift 2 ;;
        --stage=*) stage=${1#--stage=}; shift ;;
        *) echo "train.sh: unknown argument $1 (use --profile NAME, --stage 1|2|all; IRN_ARGS/GCN_ARGS/DEEPLAB_ARGS for step flags)" >&2; exit 2 ;;
    esac
done
case "$stage" in
    1|2|all) ;;
    *) echo "train.sh: --stage $stage: use 1, 2 or all" >&2; exit 2 ;;
esac

DATASET=${DATASET:-voc12}
VOC12_ROOT=${VOC12_ROOT:-Data/VOC12/VOC2012}
if [ "$DATASET" = voc12 ]; then
    DATA_ROOT=${DATA_ROOT:-$VOC12_ROOT}
    CLS_LABELS=${CLS_LABELS-Data/VOC12/cls_labels.txt}
else
    CLS_LABELS=${CLS_LABELS-}
fi
TRAIN_LIST=${TRAIN_LIST:-Data/VOC12/train_aug.txt}
INFER_LIST=${INFER_LIST:-Data/VOC12/train.txt}
WORK_DIR=${WORK_DIR:-Data}
SEG_TRAIN_LIST=${SEG_TRAIN_LIST:-Data/VOC12/train_aug.txt}
SEG_VAL_LIST=${SEG_VAL_LIST:-Data/VOC12/val.txt}
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi

NPROC=${NPROC:-1}
case "$NPROC" in
    gpu) NPROC=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
         [ "$NPROC" -ge 1 ] || { echo "train.sh: NPROC=gpu, but no GPU is visible" >&2; exit 2; } ;;
    cpu) NPROC=$("$PYTHON" -c "import os; print(os.cpu_count())") ;;
    ''|*[!0-9]*) echo "train.sh: NPROC=$NPROC: use a number of processes, gpu (one per visible GPU) or cpu" >&2
         exit 2 ;;
esac
if [ "$NPROC" -gt 1 ] || [ -n "${TORCHRUN_ARGS:-}" ]; then
    read -r -a rdzv <<< "${TORCHRUN_ARGS:---standalone}"
    launch=("$PYTHON" -m torch.distributed.run "${rdzv[@]}" --nproc_per_node "$NPROC")
else
    launch=("$PYTHON")
fi
status=0

data=(--dataset "$DATASET" --data_root "${DATA_ROOT:-}")  # where the images, labels and ground truth are
common=(--profile "$profile" "${data[@]}" --work_dir "$WORK_DIR" --device "${DEVICE:-}" --cls_labels "$CLS_LABELS")
read -r -a irn_extra <<< "${IRN_ARGS:-}"
read -r -a gcn_extra <<< "${GCN_ARGS:-}"
read -r -a deeplab_extra <<< "${DEEPLAB_ARGS:-}"

# Stage II's paper profile starts from the COCO-trained DeepLab-v1 unless DEEPLAB_ARGS names an
# --init or another --profile (the last one given counts, as for the scripts): without the file,
# say how to make it before Stage I runs for hours.
coco_init=$WORK_DIR/sess/deeplabv1_resnet101-coco.pth
deeplab_profile=$profile; deeplab_init=""
for ((i = 0; i < ${#deeplab_extra[@]}; i++)); do
    case ${deeplab_extra[i]} in
        --profile) deeplab_profile=${deeplab_extra[i + 1]:-} ;;
        --profile=*) deeplab_profile=${deeplab_extra[i]#--profile=} ;;
        --init|--init=*) deeplab_init=given ;;
    esac
done
if [ "$stage" != 1 ] && [ "$deeplab_profile" = paper ] && [ -z "$deeplab_init" ] && [ ! -f "$coco_init" ]; then
    echo "train.sh: $coco_init is missing (the paper profile's DeepLab starts from it): download prototxt_and_model.zip (http://liangchiehchen.com/projects/released/deeplab_aspp_resnet101/prototxt_and_model.zip), unzip it and run $PYTHON DeepLab/convert_caffemodel.py --caffemodel .../init.caffemodel --out $coco_init (or give DeepLab another start: DEEPLAB_ARGS=\"--init PATH\")" >&2
    exit 2
fi

# A step's exit status: 1 (some images failed) goes on, 2 and up (nothing usable) stops here.
# Under torchrun a crashed process also ends in 1, so a stage's outputs are checked before the
# next stage starts (require).
check() { local code=$1; [ "$code" -le 1 ] || exit "$code"; [ "$code" -eq 0 ] || status=1; }
require() {  # require WHAT PATH...: each PATH a file, or a folder holding at least one file
    local what=$1; shift
    for path in "$@"; do
        if [ ! -f "$path" ] && [ -z "$(ls -A "$path" 2>/dev/null)" ]; then
            echo "train.sh: $what is missing ($path): the step before crashed; see its messages above" >&2
            exit 3
        fi
    done
}

if [ "$stage" != 2 ]; then
    # --stage all: the pseudo labels are made for every image DeepLab trains on as well
    label_list=$INFER_LIST
    if [ "$stage" = all ]; then label_list=$SEG_TRAIN_LIST; fi
    cam_steps=()
    if [ -n "${CAM_DIR:-}" ]; then
        echo "== Importing the CAMs of $CAM_DIR"
        read -r -a cam_extra <<< "${CAM_ARGS:-}"
        for list in "$TRAIN_LIST" "$label_list"; do
            code=0; "${launch[@]}" IRN/import_cams.py --src "$CAM_DIR" "${data[@]}" --work_dir "$WORK_DIR" \
                --device "${DEVICE:-}" --cls_labels "$CLS_LABELS" --list "$list" "${cam_extra[@]}" || code=$?
            check "$code"
        done
        cam_steps=(--train_cam_pass False --make_cam_pass False)
    fi
    echo "== IRN stage: CAMs, IR labels, IRNet, boundary map, node features, random-walk labels"
    code=0; "${launch[@]}" IRN/run_sample.py "${common[@]}" --train_list "$TRAIN_LIST" --infer_list "$label_list" \
        --val_list "${VAL_LIST:-}" "${cam_steps[@]}" "${irn_extra[@]}" || code=$?
    check "$code"
    require "the IRN stage's output" "$WORK_DIR/IRN4GCN/CAM" "$WORK_DIR/IRN4GCN/BOUNDARY" "$WORK_DIR/IRN4GCN/AFF_FEATURE"

    echo "== GCN stage: partial pseudo labels, one GCN per image, dense CRF"
    for script in GCN/make_dataset.py GCN/train.py GCN/CRF.py; do
        code=0; "${launch[@]}" "$script" "${common[@]}" --train_list "$label_list" "${gcn_extra[@]}" || code=$?
        check "$code"
    done
    require "the GCN stage's output" "$WORK_DIR/GCN4DeepLab/CRF_Label"
fi

report=(--work_dir "$WORK_DIR" "${data[@]}" --list "$INFER_LIST")
if [ "$stage" != 1 ]; then
    echo "== Stage II: DeepLab-v2 on the pseudo labels of $SEG_TRAIN_LIST, evaluated on $SEG_VAL_LIST"
    deeplab=(--profile "$profile" "${data[@]}" --work_dir "$WORK_DIR" --device "${DEVICE:-}" --cls_labels "$CLS_LABELS")
    code=0; "${launch[@]}" DeepLab/train.py "${deeplab[@]}" --train_list "$SEG_TRAIN_LIST" "${deeplab_extra[@]}" || code=$?
    check "$code"
    require "DeepLab's weights" "$WORK_DIR/sess/deeplab.pth"
    code=0; "${launch[@]}" DeepLab/infer.py "${deeplab[@]}" --list "$SEG_VAL_LIST" "${deeplab_extra[@]}" || code=$?
    check "$code"
    report+=(--seg_val_list "$SEG_VAL_LIST")
    if [ "${UPPER_BOUND:-0}" = 1 ]; then
        echo "== Stage II upper bound: the same network trained on the ground truth of $SEG_TRAIN_LIST"
        val_stem=$(basename "$SEG_VAL_LIST"); val_stem=${val_stem%.*}
        code=0; "${launch[@]}" DeepLab/train.py "${deeplab[@]}" --train_list "$SEG_TRAIN_LIST" \
            --label_dir ground_truth --weights_name sess/deeplab_gt.pth "${deeplab_extra[@]}" || code=$?
        check "$code"
        code=0; "${launch[@]}" DeepLab/infer.py "${deeplab[@]}" --list "$SEG_VAL_LIST" --crf False \
            --weights "$WORK_DIR/sess/deeplab_gt.pth" --out "$WORK_DIR/DeepLab/${val_stem}_gt" "${deeplab_extra[@]}" || code=$?
        check "$code"
        report+=(--upper_bound "$WORK_DIR/DeepLab/${val_stem}_gt/Label")
    fi
fi

echo "== Summary"
"$PYTHON" -m wsgcn.report "${report[@]}" || status=1
if [ "$stage" != 2 ]; then
    "$PYTHON" GCN/visualize.py --work_dir "$WORK_DIR" "${data[@]}" --list "$INFER_LIST" \
        --cls_labels "$CLS_LABELS" --quiet True >/dev/null && echo "pictures: $WORK_DIR/visualize" || status=1
fi
if [ "$status" -ne 0 ]; then
    echo "train.sh: some images failed; see the failures.txt files under $WORK_DIR" >&2
fi
exit "$status"
