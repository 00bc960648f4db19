"""The data set as one object: its classes, where an image and its ground truth are, where the
image-level labels come from.  Every step gets it from its config (``cfg.data_set()``), so that
every shape that follows the classes (CAM head, GCN output, CRF planes, DeepLab head, confusion
matrices) follows the data set.

Built in (``--dataset``): ``voc12`` (PASCAL VOC 2012 in IRNet's layout) and ``coco14`` (MS COCO
2014 in the layout docs/datasets.md gives).  Your own: the path of a JSON description,

    {"classes": ["background", "crack", "stain"], "images": "images/{name}.jpg",
     "ground_truth": "masks/{name}.png", "cls_labels": "cls_labels.txt"}

paths relative to the data root (``--data_root``; default: the description's folder); without
``ground_truth`` nothing is evaluated.  Class index 0 is the background; a label table lists
0-based object-class indices (index i is class i + 1).
"""
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wsgcn.infra.config import field
from wsgcn.infra.io import load_label_png

IGNORE_INDEX = 255  # a label map's void / unlabelled value
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # dropped from a list's names, in any case
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
COCO_CATEGORIES = (  # the 80 categories in increasing COCO category id
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)
# Their ids in COCO's annotation files: 1..90 less the ten ids the 2014 release leaves unused.
COCO_CATEGORY_IDS = tuple(i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))


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


def labels_to_multi_hot(indices, count, source):
    """(count,) float32 multi-hot vector from object-class indices 0..count-1; ``source`` names
    the origin in errors."""
    indices = np.asarray(indices, dtype=np.int64)
    bad = indices[(indices < 0) | (indices >= count)]
    if bad.size:
        raise ValueError(f"{source}: object-class index {int(bad[0])} outside 0..{count - 1}")
    multi_hot = np.zeros(count, np.float32)
    multi_hot[indices] = 1.0
    return multi_hot


def load_cls_label_table(path, count, allow_pickle=False):
    """Image-level labels from a table: {name: (count,) float32 multi-hot over the ``count``
    object classes}.

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
        return {str(k): _multi_hot_of(path, k, v, count) for k, v in table.items()}
    table, line_of = {}, {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            indices = [int(t) for t in tokens[1:]]
        except ValueError:
            raise ValueError(f"{path}:{lineno}: class indices must be integers, got {line!r}") from None
        name, labels = tokens[0], labels_to_multi_hot(indices, count, f"{path}:{lineno}")
        if name in table and not np.array_equal(table[name], labels):
            raise ValueError(f"{path}:{line_of[name]} and {path}:{lineno} give image {name} different classes")
        table[name] = labels
        line_of.setdefault(name, lineno)
    return table


def read_annotation_labels(xml_path, object_classes):
    """(len(object_classes),) float32 multi-hot vector of the object classes named in a VOC XML
    annotation."""
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
        if name not in object_classes:
            raise ValueError(f"{xml_path}: unknown object class {name!r}")
        indices.append(object_classes.index(name))
    return labels_to_multi_hot(indices, len(object_classes), xml_path)


class LabelsNotFound(KeyError):
    """An image missing from the label table.  Its message reads as written (a plain KeyError's
    ``str`` wraps it in quotes)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def _multi_hot_of(path, name, value, count):
    """IRNet's pickled table entry as a (count,) float32 vector; another length is an error."""
    value = np.asarray(value, np.float32).reshape(-1)
    if value.shape != (count,):
        raise ValueError(f"{path}: image {name}'s labels have {value.size} entries, the data set has {count} "
                         f"object classes")
    return value


@dataclass(frozen=True)
class Description:
    """What a data set is, wherever it lies.

    classes: the class names, background first.
    images, ground_truth, annotations: path templates under the data root with ``{name}`` (the
        image's name) and, for COCO, ``{split}`` (``train2014`` in ``COCO_train2014_000000000009``);
        ``ground_truth`` None: no ground truth, nothing is evaluated; ``annotations`` (VOC's
        XML files): where the image-level labels come from when there is no label table.
    cls_labels: the data set's own label table under the root, used when ``--cls_labels`` is ''.
    default_root: the data root when ``--data_root`` is not given.
    """
    name: str
    classes: tuple
    images: str
    ground_truth: str = None
    annotations: str = None
    cls_labels: str = None
    default_root: str = ""

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def object_classes(self):
        return self.classes[1:]


DATASETS = {
    "voc12": Description("voc12", VOC_CLASSES, "JPEGImages/{name}.jpg",
                         ground_truth="SegmentationClassAug/{name}.png", annotations="Annotations/{name}.xml",
                         default_root="Data/VOC12/VOC2012"),
    "coco14": Description("coco14", ("background",) + COCO_CATEGORIES, "{split}/{name}.jpg",
                          ground_truth="SegmentationClass/{split}/{name}.png", cls_labels="cls_labels.txt",
                          default_root="Data/COCO14"),
}
DESCRIPTION_KEYS = {"classes", "images", "ground_truth", "cls_labels"}


def read_description(path):
    """A data set described by a JSON file (see the module's docstring); a malformed file is a
    ValueError naming it and what is wrong."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON data-set description ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a data-set description is a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - DESCRIPTION_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; a description has {sorted(DESCRIPTION_KEYS)}")
    classes = raw.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) and c for c in classes)):
        raise ValueError(f"{path}: 'classes' must list at least two class names, background first")
    if len(set(classes)) != len(classes):
        raise ValueError(f"{path}: 'classes' names a class twice")
    if len(classes) > IGNORE_INDEX:
        raise ValueError(f"{path}: {len(classes)} classes; label maps hold at most {IGNORE_INDEX} (255 = ignored)")
    for key in ("images", "ground_truth", "cls_labels"):
        value = raw.get(key)
        if key == "images" and value is None:
            raise ValueError(f"{path}: 'images' is required, e.g. \"images/{{name}}.jpg\"")
        if value is not None and not (isinstance(value, str) and value):
            raise ValueError(f"{path}: {key!r} must be a path relative to the data root")
        if key != "cls_labels" and value is not None and "{name}" not in value:
            raise ValueError(f"{path}: {key!r} must contain {{name}}, got {value!r}")
    return Description(str(path), tuple(classes), raw["images"], ground_truth=raw.get("ground_truth"),
                       cls_labels=raw.get("cls_labels"), default_root=str(path.parent))


def describe(dataset):
    """The :class:`Description` of ``--dataset`` (a built-in name or a JSON file)."""
    if dataset in DATASETS:
        return DATASETS[dataset]
    if str(dataset).endswith(".json") or os.path.isfile(dataset):
        return read_description(dataset)
    raise ValueError(f"--dataset {dataset!r}: use {', '.join(DATASETS)} or the path of a JSON description")


def coco_split(name):
    """``train2014`` of ``COCO_train2014_000000000009``: the folder of a COCO image."""
    parts = name.split("_")
    if len(parts) != 3 or parts[0] != "COCO":
        raise ValueError(f"{name!r} is not a COCO image name (COCO_<split>_<id>)")
    return parts[1]


class DataSet:
    """One data set at ``root``: reads its images, ground truth and image-level labels.

    ``cls_labels``: a label table (``name idx idx ...``) to take the image-level labels from
    instead of the description's own table, or else its XML annotations (VOC); ``labels``
    False: no label table is read (what only evaluates needs none).
    """

    def __init__(self, description, root=None, cls_labels=None, allow_pickle=False, labels=True):
        self.description = description
        self.root = Path(root or description.default_root)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"no {description.name} data set at {self.root}: {self.image_dir} is missing "
                                    f"(set --data_root, or DATA_ROOT for train.sh)")
        if cls_labels is None and description.cls_labels is not None:
            cls_labels = self.root / description.cls_labels
        if not labels:  # the evaluations need no image-level labels
            cls_labels = None
        self.cls_labels = (load_cls_label_table(cls_labels, self.num_object_classes, allow_pickle)
                           if cls_labels is not None else None)
        self.cls_labels_path = cls_labels

    @property
    def name(self):
        return self.description.name

    @property
    def classes(self):
        """The class names, background first: C of them."""
        return self.description.classes

    @property
    def num_classes(self):
        return self.description.num_classes

    @property
    def num_object_classes(self):
        return self.description.num_classes - 1

    @property
    def has_ground_truth(self):
        return self.description.ground_truth is not None

    def _path(self, template, name):
        split = coco_split(name) if "{split}" in template else None
        return self.root / template.format(name=name, split=split)

    @property
    def image_dir(self):
        """The folder of the images (the root itself where it depends on the image, as COCO's
        splits do): it must exist."""
        template = self.description.images
        return self.root if "{split}" in template else (self.root / template.format(name="x")).parent

    def image_path(self, name):
        return self._path(self.description.images, name)

    def gt_path(self, name):
        if not self.has_ground_truth:
            raise FileNotFoundError(f"{self.name}: the data set has no ground truth (no 'ground_truth' in "
                                    f"its description)")
        return self._path(self.description.ground_truth, name)

    def annotation_path(self, name):
        return self._path(self.description.annotations, name)

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
        """(H, W) uint8 ground-truth label map (palette or plain 8-bit PNG), 255 = void."""
        return load_label_png(self.gt_path(name))

    def labels_path(self, name):
        """The file image ``name``'s image-level labels come from (the label table, or its XML
        annotation): an input of every per-image step that reads them, so that editing it
        makes their outputs stale (:func:`wsgcn.infra.per_image.pending_images`)."""
        return Path(self.cls_labels_path) if self.cls_labels is not None else self.annotation_path(name)

    def class_labels(self, name):
        """(C-1,) float32 multi-hot image-level label over the object classes; an image with no
        object class is an error."""
        if self.cls_labels is not None:
            if name not in self.cls_labels:
                raise LabelsNotFound(f"{self.cls_labels_path}: no labels for image {name!r}")
            labels, source = self.cls_labels[name], self.cls_labels_path
        elif self.description.annotations is not None:
            source = self.annotation_path(name)
            labels = read_annotation_labels(source, self.description.object_classes)
        else:
            raise FileNotFoundError(f"{self.name}: no image-level labels: pass --cls_labels (a table of "
                                    f"'name idx idx ...' lines)")
        if not labels.any():
            raise ValueError(f"{source}: image {name!r} has no object class")
        return labels


@dataclass(frozen=True)
class DataConfig:
    """The settings of every script that reads a data set (a stage's config is
    ``class XConfig(CommonConfig, DataConfig)``)."""
    dataset: str = field("voc12", "the data set: voc12, coco14 or the path of a JSON description "
                                  "(docs/datasets.md)", choices=tuple(DATASETS), or_path=True)
    data_root: str = field("", "the data set's root folder ('' = --voc12_root for voc12, Data/COCO14 for "
                               "coco14, the description's folder for a JSON file)")
    voc12_root: str = field("Data/VOC12/VOC2012", "VOC-format data set: JPEGImages, SegmentationClassAug, "
                                                  "Annotations (--data_root for voc12, kept as its alias)")
    cls_labels: str = field("", "image-level label table (name idx idx ...); '' = the data set's own "
                                "(voc12: the XML annotations; coco14: <data_root>/cls_labels.txt)")
    allow_pickle: bool = field(False, "read legacy pickled files (IRNet's .npy CAMs and label dicts, "
                                      "WSGCN's .npy Logits)")

    def data_set(self, labels=True):
        """The :class:`DataSet` these settings name; ``labels`` False: without its label table."""
        description = describe(self.dataset)
        root = self.data_root or (self.voc12_root if self.dataset == "voc12" else description.default_root)
        return DataSet(description, root, self.cls_labels or None, self.allow_pickle, labels)
