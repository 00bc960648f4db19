import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsgcn.seg.dataset import load_cls_label_table, read_annotation_labels, read_image_list
from wsgcn.seg.voc import CAT_LIST, CLASS_NAMES, NUM_OBJECT_CLASSES, VOC12

SHARED_LISTS = Path(__file__).resolve().parents[1] / "Data" / "VOC12"


def write_annotation(path, class_names):
    objects = "".join(f"<object><name>{n}</name><bndbox><xmin>1</xmin></bndbox></object>" for n in class_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>x.jpg</filename>{objects}</annotation>")


@pytest.fixture
def voc_root(tmp_path):
    root = tmp_path / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (9, 13, 3), dtype=np.uint8)).save(root / "JPEGImages" / "good.jpg")
    write_annotation(root / "Annotations" / "good.xml", ["person", "dog", "person"])
    write_annotation(root / "Annotations" / "empty.xml", [])
    return root


def test_class_names():
    assert len(CAT_LIST) == 20 and CLASS_NAMES[0] == "background" and CLASS_NAMES[15] == "person"


def test_read_image_list_both_forms(tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text("2007_000032\n\n/JPEGImages/2007_000039.jpg /SegmentationClassAug/2007_000039.png\n"
                   "  2007_000063  \n")
    assert read_image_list(lst) == ["2007_000032", "2007_000039", "2007_000063"]


def test_read_image_list_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="empty.txt"):
        read_image_list(tmp_path / "empty.txt")
    (tmp_path / "bad.txt").write_text("a\nb c d\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        read_image_list(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_image_list(tmp_path / "nope.txt")


def test_shipped_voc_lists():
    assert len(read_image_list(SHARED_LISTS / "train.txt")) == 1464
    assert len(read_image_list(SHARED_LISTS / "val.txt")) == 1449
    assert len(read_image_list(SHARED_LISTS / "train_aug.txt")) == 10582
    table = load_cls_label_table(SHARED_LISTS / "cls_labels.txt", NUM_OBJECT_CLASSES)
    assert np.flatnonzero(table["2007_000032"]).tolist() == [0, 14]  # aeroplane, person
    assert all(name in table for name in read_image_list(SHARED_LISTS / "train_aug.txt"))


def test_label_table_rejects_bad_index(tmp_path):
    (tmp_path / "t.txt").write_text("a 0 3\nb 20\n")
    with pytest.raises(ValueError, match="t.txt:2.*20"):
        load_cls_label_table(tmp_path / "t.txt", NUM_OBJECT_CLASSES)
    np.save(tmp_path / "t.npy", {"a": np.ones(20)}, allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        load_cls_label_table(tmp_path / "t.npy", NUM_OBJECT_CLASSES)
    assert load_cls_label_table(tmp_path / "t.npy", NUM_OBJECT_CLASSES, allow_pickle=True)["a"].sum() == 20


def test_annotation_labels(voc_root):
    labels = read_annotation_labels(voc_root / "Annotations" / "good.xml", CAT_LIST)
    assert np.flatnonzero(labels).tolist() == [CAT_LIST.index("dog"), CAT_LIST.index("person")]
    assert labels.dtype == np.float32 and labels.shape == (20,)
    write_annotation(voc_root / "Annotations" / "odd.xml", ["unicorn"])
    with pytest.raises(ValueError, match="odd.xml.*unicorn"):
        read_annotation_labels(voc_root / "Annotations" / "odd.xml", CAT_LIST)


def test_voc12_reading_and_errors(voc_root, tmp_path):
    voc = VOC12(voc_root)
    assert voc.load_image("good").shape == (9, 13, 3)
    assert voc.class_labels("good").sum() == 2
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        voc.load_image("missing")
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        voc.class_labels("missing")
    with pytest.raises(ValueError, match="empty.xml.*no object class"):
        voc.class_labels("empty")
    # A truncated JPEG is named in the error.
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, format="JPEG")
    (voc_root / "JPEGImages" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ValueError, match="cut.jpg.*unreadable"):
        voc.load_image("cut")
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        VOC12(tmp_path / "nowhere")


def test_voc12_label_table_source(voc_root, tmp_path):
    (tmp_path / "t.txt").write_text("good 7\nnone\n")
    voc = VOC12(voc_root, cls_labels=tmp_path / "t.txt")
    assert np.flatnonzero(voc.class_labels("good")).tolist() == [7]
    with pytest.raises(ValueError, match="no object class"):
        voc.class_labels("none")
    with pytest.raises(KeyError, match="other"):
        voc.class_labels("other")
