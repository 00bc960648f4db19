"""PASCAL VOC 2012 in the layout IRNet and WSGCN read: images, ground truth, image-level labels.

``<root>/JPEGImages/<name>.jpg``, ``<root>/SegmentationClassAug/<name>.png`` (palette PNG,
255 = void) and ``<root>/Annotations/<name>.xml``.  Image-level labels are 20-d multi-hot
vectors over the object classes (background excluded), from the XML annotations or from a
label table (``name idx idx ...`` per line, 0-based object-class indices).
"""
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from wsgcn.infra.io import load_label_png

CAT_LIST = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
            "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
            "train", "tvmonitor"]
CLASS_NAMES = ["background"] + CAT_LIST
NUM_OBJECT_CLASSES = len(CAT_LIST)  # 20
NUM_CLASSES = len(CLASS_NAMES)      # 21, background first
IGNORE_INDEX = 255
CAT_INDEX = {name: i for i, name in enumerate(CAT_LIST)}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # dropped from a list's names, in any case


def image_name(token):
    """The image name in a list token: its last path component less a trailing image or label
    extension (``/JPEGImages/x.y.jpg`` -> ``x.y``).  Other dots belong to the name: ``a.b``
    stays ``a.b``."""
    base = token.rsplit("/", 1)[-1]
    stem, dot, extension = base.rpartition(".")
    return stem if dot and f".{extension.lower()}" in IMAGE_EXTENSIONS else base


def read_image_list(path):
    """Image names of a list file, in order.

    Each line is a bare name (``2007_000032``) or a DeepLab-style pair
    (``/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png``), read by
    :func:`image_name`; blank lines are skipped.  An empty list, a line of another shape, or a
    name given twice is an error naming the file and the lines.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image list not found: {path}")
    line_of = {}  # name -> the line that named it first
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) > 2:
            raise ValueError(f"{path}:{lineno}: expected a name or an 'image label' pair, got {line!r}")
        name = image_name(tokens[0])
        if not name:
            raise ValueError(f"{path}:{lineno}: no image name in {line!r}")
        if name in line_of:  # it would be trained on, or scored, twice
            raise ValueError(f"{path}:{line_of[name]} and {path}:{lineno} both name {name}")
        line_of[name] = lineno
    if not line_of:
        raise ValueError(f"image list is empty: {path}")
    return list(line_of)  # dicts keep the order of insertion


def labels_to_multi_hot(indices, source):
    """(20,) float32 multi-hot vector from object-class indices; ``source`` names the origin in errors."""
    indices = np.asarray(indices, dtype=np.int64)
    bad = indices[(indices < 0) | (indices >= NUM_OBJECT_CLASSES)]
    if bad.size:
        raise ValueError(f"{source}: object-class index {int(bad[0])} outside 0..{NUM_OBJECT_CLASSES - 1}")
    multi_hot = np.zeros(NUM_OBJECT_CLASSES, np.float32)
    multi_hot[indices] = 1.0
    return multi_hot


def load_cls_label_table(path, allow_pickle=False):
    """Image-level labels from a table: {name: (20,) float32 multi-hot}.

    The plain-text table has one image per line, ``name idx idx ...``; an image named twice
    must have the same classes both times (which of two would be its label?).  IRNet's pickled
    ``cls_labels.npy`` dict (name -> multi-hot) is read only with ``allow_pickle=True``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label table not found: {path}")
    if path.suffix == ".npy":
        if not allow_pickle:
            raise ValueError(f"{path}: a .npy label table is a pickled dict; pass --allow_pickle to "
                             "trust it, or use the plain-text table")
        table = np.load(path, allow_pickle=True).item()
        return {str(k): np.asarray(v, np.float32).reshape(NUM_OBJECT_CLASSES) for k, v in table.items()}
    table, line_of = {}, {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            indices = [int(t) for t in tokens[1:]]
        except ValueError:
            raise ValueError(f"{path}:{lineno}: class indices must be integers, got {line!r}") from None
        name, labels = tokens[0], labels_to_multi_hot(indices, f"{path}:{lineno}")
        if name in table and not np.array_equal(table[name], labels):
            raise ValueError(f"{path}:{line_of[name]} and {path}:{lineno} give image {name} different classes")
        table[name] = labels
        line_of.setdefault(name, lineno)
    return table


def read_annotation_labels(xml_path):
    """(20,) float32 multi-hot vector of the object classes named in a VOC XML annotation."""
    xml_path = Path(xml_path)
    if not xml_path.is_file():
        raise FileNotFoundError(f"annotation not found: {xml_path}")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{xml_path}: malformed XML ({e})") from None
    indices = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in CAT_INDEX:
            raise ValueError(f"{xml_path}: unknown object class {name!r}")
        indices.append(CAT_INDEX[name])
    return labels_to_multi_hot(indices, xml_path)


class LabelsNotFound(KeyError):
    """An image missing from the label table.  Its message reads as written (a plain KeyError's
    ``str`` wraps it in quotes)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class VOC12:
    """One VOC-format data set: where its files are and how to read them.

    ``cls_labels``: a label table to take image-level labels from instead of the XML
    annotations (``None``: annotations).
    """

    def __init__(self, root, cls_labels=None, allow_pickle=False):
        self.root = Path(root)
        if not (self.root / "JPEGImages").is_dir():
            raise FileNotFoundError(f"no VOC data set at {self.root}: {self.root / 'JPEGImages'} is missing "
                                    f"(set --voc12_root, or VOC12_ROOT for train.sh)")
        self.cls_labels = (load_cls_label_table(cls_labels, allow_pickle=allow_pickle)
                           if cls_labels is not None else None)
        self.cls_labels_path = cls_labels

    @property
    def gt_dir(self):
        return self.root / "SegmentationClassAug"

    def image_path(self, name):
        return self.root / "JPEGImages" / f"{name}.jpg"

    def gt_path(self, name):
        return self.gt_dir / f"{name}.png"

    def annotation_path(self, name):
        return self.root / "Annotations" / f"{name}.xml"

    def load_image(self, name):
        """(H, W, 3) uint8 RGB image."""
        path = self.image_path(name)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except (OSError, SyntaxError) as e:
            raise ValueError(f"{path}: unreadable image ({e})") from None

    def load_gt(self, name):
        """(H, W) uint8 ground-truth label map, 255 = void."""
        return load_label_png(self.gt_path(name))

    def labels_path(self, name):
        """The file image ``name``'s image-level labels come from (the label table, or its XML
        annotation): an input of every per-image step that reads them, so that editing it
        makes their outputs stale (:func:`wsgcn.infra.per_image.pending_images`)."""
        return Path(self.cls_labels_path) if self.cls_labels is not None else self.annotation_path(name)

    def class_labels(self, name):
        """(20,) float32 multi-hot image-level label; an image with no object class is an error."""
        if self.cls_labels is not None:
            if name not in self.cls_labels:
                raise LabelsNotFound(f"{self.cls_labels_path}: no labels for image {name!r}")
            labels, source = self.cls_labels[name], self.cls_labels_path
        else:
            source = self.annotation_path(name)
            labels = read_annotation_labels(source)
        if not labels.any():
            raise ValueError(f"{source}: image {name!r} has no object class")
        return labels
