"""PASCAL VOC 2012 in the layout IRNet and WSGCN read (the ``voc12`` data set of
:mod:`wsgcn.seg.dataset`): ``<root>/JPEGImages/<name>.jpg``, ``<root>/SegmentationClassAug/<name>.png``
(palette PNG, 255 = void) and ``<root>/Annotations/<name>.xml``; image-level labels are 20-d
multi-hot vectors over the object classes (background excluded), from the XML annotations or
from a label table.  Its class names and counts, for the code that is about VOC itself (the
demo data) and for the tests.
"""
from wsgcn.seg.dataset import DATASETS, VOC_CLASSES, DataSet

CAT_LIST = list(VOC_CLASSES[1:])
CLASS_NAMES = list(VOC_CLASSES)
NUM_OBJECT_CLASSES = len(CAT_LIST)  # 20
NUM_CLASSES = len(CLASS_NAMES)      # 21, background first
CAT_INDEX = {name: i for i, name in enumerate(CAT_LIST)}


def VOC12(root, cls_labels=None, allow_pickle=False):  # noqa: N802 (read as the data set's name)
    """The VOC data set at ``root`` (labels from ``cls_labels``, or else the XML annotations)."""
    return DataSet(DATASETS["voc12"], root, cls_labels, allow_pickle)
