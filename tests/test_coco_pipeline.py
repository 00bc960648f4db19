"""The whole COCO path by the commands docs/datasets.md gives: a COCO-format data set (the demo's,
official JSON layout) -> python -m wsgcn.coco -> train.sh --stage all with DATASET=coco14 -> eval.py."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402

from wsgcn import coco  # noqa: E402
from wsgcn.demo_data import make_demo_dataset  # noqa: E402
from wsgcn.infra.io import load_label_png  # noqa: E402
from wsgcn.seg.dataset import read_image_list  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = {  # the demo profile at test sizes, as tests/conftest.py's irn_test_argv
    "IRN_ARGS": "--cam_crop_size 64 --cam_batch_size 4 --cam_num_epoches 1 --cam_scales 1.0 0.5 --irn_crop_size 96 "
                "--irn_batch_size 4 --irn_num_epoches 1 --num_workers 0 --quiet True",
    "GCN_ARGS": "--max_epoch 20 --num_workers 0 --quiet True",
    "DEEPLAB_ARGS": "--crop_size 32 --train_scales 0.25 --batch_size 2 --iterations 1 --num_workers 0 --quiet True",
}


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    make_demo_dataset(root, num_train=8, num_val=4, seed=0, fmt="coco")
    assert coco.main(["--root", str(root), "--num_workers", "0", "--quiet", "True"]) == 0
    return root


def test_converted_ground_truth_is_the_annotations_rasterisation(coco_root):
    """Every annotation's pixels (pycocotools' own rasterisation) carry its class or 255 in the
    mask, but where a smaller annotation lies on it."""
    for split in ("train2014", "val2014"):
        api = COCO(str(coco_root / "annotations" / f"instances_{split}.json"))
        index = coco.class_indices(api.dataset["categories"], split)
        listed = read_image_list(coco_root / f"{split}.txt")
        assert len(listed) == sum(1 for i in api.imgs if api.getAnnIds(imgIds=[i]))  # the empty image is out
        agree = total = 0
        for image_id in api.imgs:
            anns = api.loadAnns(api.getAnnIds(imgIds=[image_id]))
            if not anns:
                continue
            name = Path(api.imgs[image_id]["file_name"]).stem
            gt = load_label_png(coco_root / "SegmentationClass" / split / f"{name}.png")
            masks = [(api.annToMask(a).astype(bool), 255 if a["iscrowd"] else index[a["category_id"]]) for a in anns]
            for k, (pixels, value) in enumerate(masks):
                covered = np.zeros_like(pixels)
                for other, _ in masks:
                    if other.sum() < pixels.sum():
                        covered |= other
                own = pixels & ~covered
                agree += int((gt[own] == value).sum())
                total += int(own.sum())
            assert set(np.unique(gt).tolist()) <= {0, 255} | set(range(1, 81))
        assert agree == total > 0


def test_both_stages_and_eval_run_by_the_documented_commands(coco_root, tmp_path):
    work = tmp_path / "W"
    env = {**os.environ, "DATASET": "coco14", "DATA_ROOT": str(coco_root),
           "TRAIN_LIST": str(coco_root / "train2014.txt"), "INFER_LIST": str(coco_root / "train2014.txt"), "SEG_TRAIN_LIST": str(coco_root / "train2014.txt"),
           "SEG_VAL_LIST": str(coco_root / "val2014.txt"), "WORK_DIR": str(work), "DEVICE": "cpu",
           "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": "", **TINY}
    env.pop("CLS_LABELS", None)  # the data set's own table: ROOT/cls_labels.txt
    out = subprocess.run(["bash", str(REPO / "train.sh"), "--profile", "demo", "--stage", "all"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "toothbrush" in out.stdout  # the tables have COCO's 80 categories

    train, val = read_image_list(coco_root / "train2014.txt"), read_image_list(coco_root / "val2014.txt")
    for folder, names in ((work / "GCN4DeepLab/Label", train), (work / "GCN4DeepLab/CRF_Label", train),
                          (work / "DeepLab/val2014/Label", val), (work / "DeepLab/val2014/CRF_Label", val)):
        for name in names:
            values = set(np.unique(load_label_png(folder / f"{name}.png")).tolist())
            assert values <= set(range(81)) | {255}, (folder, name, values)

    result = subprocess.run([sys.executable, "eval.py", "--dataset", "coco14", "--data_root", str(coco_root),
                             "--pred", str(work / "GCN4DeepLab/CRF_Label"), "--list", str(coco_root / "train2014.txt")],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("mIoU: ") and 0.0 < float(last.split()[-1]) <= 100.0
