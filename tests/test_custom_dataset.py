"""A data set of one's own, described by a JSON file alone, through both stages: 3 classes, its
own folder layout, plain 8-bit ground truth, its own label table."""
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import irn_test_argv
from PIL import Image

import eval as eval_script
from DeepLab import infer as deeplab_infer
from DeepLab import train as deeplab_train
from GCN import CRF as gcn_crf
from GCN import make_dataset
from GCN import train as gcn_train
from IRN import run_sample
from wsgcn import report
from wsgcn.infra.io import load_label_png
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.scores import load_cams, load_probs
from wsgcn.seg.voc import CAT_INDEX

CLASSES = ["background", "flyer", "ground"]
# the demo's VOC labels -> this data set's: what flies (aeroplane, bird) and what does not
MERGED = {0: 0, 255: 255, CAT_INDEX["aeroplane"] + 1: 1, CAT_INDEX["bird"] + 1: 1,
          CAT_INDEX["car"] + 1: 2, CAT_INDEX["cat"] + 1: 2, CAT_INDEX["person"] + 1: 2}


@pytest.fixture(scope="module")
def custom(demo_root, tmp_path_factory):
    """The demo images in a layout of their own: pictures/<name>.jpg, truth/<name>.png (plain
    8-bit), tags.txt; described by flyers.json.  Returns (description path, train list, val list)."""
    root = tmp_path_factory.mktemp("flyers")
    lists = {}
    for split in ("train", "val"):
        names = read_image_list(demo_root / f"{split}.txt")
        lists[split] = root / f"{split}.txt"
        lists[split].write_text("\n".join(names) + "\n")
        for name in names:
            (root / "pictures").mkdir(exist_ok=True)
            shutil.copy(demo_root / "VOC2012/JPEGImages" / f"{name}.jpg", root / "pictures" / f"{name}.jpg")
            voc = load_label_png(demo_root / "VOC2012/SegmentationClassAug" / f"{name}.png")
            truth = np.vectorize(MERGED.get)(voc).astype(np.uint8)
            (root / "truth").mkdir(exist_ok=True)
            Image.fromarray(truth, mode="L").save(root / "truth" / f"{name}.png")
            present = sorted(set(np.unique(truth).tolist()) - {0, 255})
            with open(root / "tags.txt", "a") as table:
                table.write(" ".join([name] + [str(c - 1) for c in present]) + "\n")
    description = root / "flyers.json"
    description.write_text(json.dumps({"classes": CLASSES, "images": "pictures/{name}.jpg",
                                       "ground_truth": "truth/{name}.png", "cls_labels": "tags.txt"}))
    return description, lists["train"], lists["val"]


def dataset_flags(description):
    return ["--dataset", str(description)]


def without(argv, *flags):
    """``argv`` less each of ``flags`` and its value."""
    argv = list(argv)
    for flag in flags:
        i = argv.index(flag)
        del argv[i:i + 2]
    return argv


def test_both_stages_run_on_a_three_class_data_set(demo_root, custom, tmp_path, capsys):
    description, train_list, val_list = custom
    work = tmp_path / "work"
    irn = without(irn_test_argv(demo_root, work), "--voc12_root", "--cls_labels", "--train_list", "--infer_list")
    run_sample.main(irn + dataset_flags(description) + ["--train_list", str(train_list), "--infer_list",
                                                        str(val_list)])
    out = capsys.readouterr().out
    assert "flyer" in out and "ground" in out and "aeroplane" not in out  # eval_cam's table has its classes
    names = read_image_list(val_list)
    cams = load_cams(work / "IRN4GCN/CAM" / f"{names[0]}.npz", 2)
    assert set(cams["classes"].tolist()) <= {0, 1}
    assert torch.load(work / "sess/res50_cam.pth", weights_only=True)["classifier.weight"].shape == (2, 2048, 1, 1)

    gcn = dataset_flags(description) + ["--work_dir", str(work), "--train_list", str(val_list), "--max_epoch", "20",
                                        "--num_workers", "0", "--quiet", "True"]
    for script in (make_dataset, gcn_train, gcn_crf):
        script.main(gcn)
    for name in names:
        labels, prob = load_probs(work / "GCN4DeepLab/Logit" / f"{name}.npz", 3)
        assert labels[0] == 0 and set(labels.tolist()) <= {0, 1, 2}
        assert set(np.unique(load_label_png(work / "GCN4DeepLab/CRF_Label" / f"{name}.png")).tolist()) <= {0, 1, 2}
    capsys.readouterr()

    assert eval_script.main(dataset_flags(description) + ["--pred", str(work / "GCN4DeepLab/CRF_Label"),
                                                          "--list", str(val_list)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[-1].startswith("mIoU: ") and "flyer" in table and "tvmonitor" not in table

    deeplab = dataset_flags(description) + ["--profile", "demo", "--work_dir", str(work), "--crop_size", "32",
                                            "--train_scales", "0.25", "--batch_size", "2", "--iterations", "1",
                                            "--num_workers", "0", "--quiet", "True"]
    deeplab_train.main(deeplab + ["--train_list", str(val_list)])
    state = torch.load(work / "sess/deeplab.pth", weights_only=True)
    assert state["base.model2.aspp.c0.weight"].shape[0] == 3  # the head follows the data set
    deeplab_infer.main(deeplab + ["--list", str(val_list)])
    label = load_label_png(work / "DeepLab/val/Label" / f"{names[0]}.png")
    assert set(np.unique(label).tolist()) <= {0, 1, 2}

    capsys.readouterr()
    assert report.main(dataset_flags(description) + ["--work_dir", str(work), "--list", str(val_list),
                                                     "--seg_val_list", str(val_list)]) == 0
    assert "DeepLab" in capsys.readouterr().out


def test_a_class_index_outside_the_classes_is_refused(custom, tmp_path, capsys):
    description, train_list, _ = custom
    bad = tmp_path / "bad.json"
    spec = json.loads(description.read_text())
    (tmp_path / "tags.txt").write_text(f"{read_image_list(train_list)[0]} 2\n")  # only 0 and 1 exist
    spec["cls_labels"] = str(tmp_path / "tags.txt")
    spec["images"] = str(description.parent / "pictures/{name}.jpg")
    bad.write_text(json.dumps(spec))
    with pytest.raises(SystemExit) as stop:
        run_sample.main(["--dataset", str(bad), "--work_dir", str(tmp_path / "w"), "--train_list", str(train_list),
                         "--infer_list", str(train_list)])
    assert stop.value.code == 2
    assert f"{tmp_path / 'tags.txt'}:1: object-class index 2 outside 0..1" in capsys.readouterr().err
