"""The data set as one object (wsgcn/seg/dataset.py): built-in descriptions, JSON descriptions,
paths, labels, and the settings that name a data set."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from IRN.config import IRNConfig
from wsgcn.infra.config import parse_config
from wsgcn.seg.dataset import DATASETS, DataSet, coco_split, describe, read_description
from wsgcn.seg.voc import CLASS_NAMES, VOC12


def write_image(path, size=(6, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros(size + (3,), np.uint8)).save(path)


@pytest.fixture
def custom(tmp_path):
    """A three-class data set of its own: two images, masks, a label table, its description."""
    root = tmp_path / "cracks"
    for name in ("a", "b"):
        write_image(root / "images" / f"{name}.jpg")
    (root / "masks").mkdir()
    Image.fromarray(np.array([[0, 1], [2, 255]], np.uint8)).save(root / "masks/a.png")  # plain 8-bit
    (root / "cls_labels.txt").write_text("a 0 1\nb 1\n")
    description = {"classes": ["background", "crack", "stain"], "images": "images/{name}.jpg",
                   "ground_truth": "masks/{name}.png", "cls_labels": "cls_labels.txt"}
    (root / "cracks.json").write_text(json.dumps(description))
    return root


def test_voc12_is_the_layout_irnet_reads(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    voc = VOC12(tmp_path)
    assert voc.classes == tuple(CLASS_NAMES) and voc.num_classes == 21 and voc.num_object_classes == 20
    assert voc.image_path("2007_000032") == tmp_path / "JPEGImages/2007_000032.jpg"
    assert voc.gt_path("2007_000032") == tmp_path / "SegmentationClassAug/2007_000032.png"
    assert voc.labels_path("x") == tmp_path / "Annotations/x.xml"  # no table: the XML annotations


def test_coco14_finds_an_image_from_its_stem(tmp_path):
    coco = DataSet(DATASETS["coco14"], tmp_path, labels=False)
    assert coco.num_classes == 81 and coco.classes[1] == "person" and coco.classes[-1] == "toothbrush"
    assert coco.image_path("COCO_val2014_000000000042") == tmp_path / "val2014/COCO_val2014_000000000042.jpg"
    assert coco.gt_path("COCO_train2014_000000000009") == \
        tmp_path / "SegmentationClass/train2014/COCO_train2014_000000000009.png"
    assert coco_split("COCO_train2014_000000000009") == "train2014"
    with pytest.raises(ValueError, match="'2007_000032' is not a COCO image name"):
        coco.image_path("2007_000032")


def test_coco14_reads_its_own_label_table(tmp_path):
    (tmp_path / "cls_labels.txt").write_text("COCO_train2014_000000000009 0 79\n")
    coco = DataSet(DATASETS["coco14"], tmp_path)
    labels = coco.class_labels("COCO_train2014_000000000009")
    assert labels.shape == (80,) and np.flatnonzero(labels).tolist() == [0, 79]
    (tmp_path / "cls_labels.txt").write_text("COCO_train2014_000000000009 80\n")
    with pytest.raises(ValueError, match=r"cls_labels.txt:1: object-class index 80 outside 0..79"):
        DataSet(DATASETS["coco14"], tmp_path)


def test_a_json_description_is_a_data_set_of_its_own(custom):
    data = DataSet(describe(str(custom / "cracks.json")))  # the root defaults to the description's folder
    assert data.root == custom and data.classes == ("background", "crack", "stain") and data.num_classes == 3
    assert np.flatnonzero(data.class_labels("a")).tolist() == [0, 1]
    assert data.load_gt("a").tolist() == [[0, 1], [2, 255]]
    assert data.load_image("b").shape == (6, 8, 3)


def test_without_ground_truth_nothing_can_be_evaluated(custom):
    description = json.loads((custom / "cracks.json").read_text())
    del description["ground_truth"]
    (custom / "plain.json").write_text(json.dumps(description))
    data = DataSet(describe(str(custom / "plain.json")))
    assert not data.has_ground_truth
    with pytest.raises(FileNotFoundError, match="has no ground truth"):
        data.gt_path("a")


@pytest.mark.parametrize("content, problem", [
    ("{", "not a readable JSON data-set description"),
    ("[1]", "a data-set description is a JSON object"),
    ('{"classes": ["background"], "images": "i/{name}.jpg"}', "'classes' must list at least two class names"),
    ('{"classes": ["bg", "a", "a"], "images": "i/{name}.jpg"}', "'classes' names a class twice"),
    ('{"classes": ["bg", "a"]}', "'images' is required"),
    ('{"classes": ["bg", "a"], "images": "i/x.jpg"}', "'images' must contain {name}"),
    ('{"classes": ["bg", "a"], "images": "i/{name}.jpg", "masks": "m"}', r"unknown key\(s\) \['masks'\]"),
])
def test_a_malformed_description_is_one_message_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as error:
        read_description(path)
    assert str(path) in str(error.value)


def test_the_settings_name_the_data_set_and_its_root(tmp_path, custom, capsys):
    (tmp_path / "voc" / "JPEGImages").mkdir(parents=True)
    # --voc12_root keeps working, and --data_root is its new name
    old = parse_config(IRNConfig, {"paper": {}}, ["--voc12_root", str(tmp_path / "voc")])
    new = parse_config(IRNConfig, {"paper": {}}, ["--data_root", str(tmp_path / "voc")])
    assert old.data_set(labels=False).root == new.data_set(labels=False).root == tmp_path / "voc"
    cfg = parse_config(IRNConfig, {"paper": {}}, ["--dataset", str(custom / "cracks.json")])
    assert cfg.data_set().num_classes == 3
    with pytest.raises(SystemExit) as exit_:
        parse_config(IRNConfig, {"paper": {}}, ["--dataset", "coco"])
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert "--dataset" in message and "voc12" in message and "coco14" in message


def test_a_missing_root_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no voc12 data set at {tmp_path}: {tmp_path / 'JPEGImages'}"):
        VOC12(tmp_path)


@pytest.mark.parametrize("env, expected", [
    ({}, ["--dataset", "voc12", "--data_root", "Data/VOC12/VOC2012", "--cls_labels", "Data/VOC12/cls_labels.txt"]),
    ({"VOC12_ROOT": "/v"}, ["--dataset", "voc12", "--data_root", "/v", "--cls_labels", "Data/VOC12/cls_labels.txt"]),
    ({"DATASET": "coco14", "DATA_ROOT": "/c"}, ["--dataset", "coco14", "--data_root", "/c", "--cls_labels", ""]),
    ({"DATASET": "/d/mine.json"}, ["--dataset", "/d/mine.json", "--data_root", "", "--cls_labels", ""]),
])
def test_train_sh_hands_every_step_the_data_set(tmp_path, env, expected):
    """DATASET, DATA_ROOT (VOC12_ROOT for voc12) and CLS_LABELS (VOC's table for voc12, else the data
    set's own) reach the steps: a stand-in interpreter records its arguments and writes nothing,
    so the run stops after the first stage (status 3)."""
    root = Path(__file__).resolve().parents[1]
    log = tmp_path / "argv.log"
    fake_python = tmp_path / "python"
    fake_python.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > {log}\nexit 1\n')
    fake_python.chmod(0o755)
    out = subprocess.run(["bash", str(root / "train.sh")], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHON=str(fake_python), WORK_DIR=str(tmp_path / "work"), **env))
    assert out.returncode == 3, out.stderr
    argv = log.read_text().split("\n")
    i = argv.index("--dataset")
    assert argv[i:i + 4] == expected[:4]
    assert argv[argv.index("--cls_labels") + 1] == expected[5]
