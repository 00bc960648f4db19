"""MS COCO 2014's instance annotations as the semantic ground truth, label table and lists the
``coco14`` data set reads (docs/datasets.md).

    python -m wsgcn.coco --root ROOT

reads ``ROOT/annotations/instances_{train2014,val2014}.json`` with pycocotools and writes:

    ROOT/SegmentationClass/<split>/<stem>.png  palette PNG: 0 background, 1..80 the categories in
                                               increasing COCO category id, 255 the crowd regions
    ROOT/cls_labels.txt                        ``<stem> idx idx ...``: the 0-based object classes of
                                               all the image's annotations (crowd ones included)
    ROOT/<split>.txt                           the images with at least one annotation

``<stem>`` is the image's file name without ``.jpg`` (``COCO_train2014_000000000009``).  The
annotations of an image are painted in decreasing area (pixels), so that a smaller object lying
on a larger one stays visible; a crowd region is painted 255 in its turn.  Images without
annotations get no mask and are in no list.

Resumable: a mask that exists and is newer than its JSON file is kept (``--overwrite True`` redoes
it); the table and the lists are rewritten from the annotations on every run (lines of splits not
converted now are kept).  An annotation that cannot be rasterised (an unknown category, a polygon
of fewer than three points, an RLE of another size) fails its image alone: named in
``ROOT/SegmentationClass/failures.txt``, left out of the table and the lists, exit status 1.
"""
import contextlib
import functools
import io
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsgcn.infra.config import field
from wsgcn.infra.io import atomic_path, prepare_outputs, save_label_png
from wsgcn.infra.per_image import Failures, map_images, pending_images
from wsgcn.infra.runtime import default_workers
from wsgcn.infra.scripts import tool_main
from wsgcn.seg.dataset import COCO_CATEGORIES, COCO_CATEGORY_IDS, IGNORE_INDEX, coco_split, image_name

SPLITS = ("train2014", "val2014")


def annotation_path(root, split):
    return Path(root) / "annotations" / f"instances_{split}.json"


def mask_path(root, split, stem):
    return Path(root) / "SegmentationClass" / split / f"{stem}.png"


def class_indices(categories, source):
    """{COCO category id: class index 1..80} of a file's ``categories``.

    All 80 declared: their rank in increasing id (the official ids, or any other numbering of
    the same 80).  Fewer: the official ids they must be, at their official rank.  A declared
    name other than the official one for its index is a warning (the class names are COCO's).
    """
    try:
        ids = sorted(int(c["id"]) for c in categories)
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"{source}: 'categories' must be a list of objects with an integer 'id'") from None
    if len(set(ids)) != len(ids):
        raise ValueError(f"{source}: 'categories' gives a category id twice")
    if len(ids) == len(COCO_CATEGORY_IDS):
        index = {cid: rank + 1 for rank, cid in enumerate(ids)}
    elif set(ids) <= set(COCO_CATEGORY_IDS):
        index = {cid: COCO_CATEGORY_IDS.index(cid) + 1 for cid in ids}
    else:
        raise ValueError(f"{source}: {len(ids)} categories with ids {ids[:5]}...; coco14 has COCO's 80 "
                         f"(all 80 declared, or only official ids)")
    renamed = [f"{c['id']}: {c.get('name')!r}" for c in categories
               if c.get("name") is not None and c["name"] != COCO_CATEGORIES[index[int(c["id"])] - 1]]
    if renamed:
        warnings.warn(f"{source}: category names other than COCO's for their index ({', '.join(renamed[:3])}"
                      f"{', ...' if len(renamed) > 3 else ''}); the classes keep COCO's names")
    return index


def annotation_mask(annotation, height, width, source):
    """(height, width) bool mask of one annotation: polygons (a list of flat ``[x0, y0, x1, y1,
    ...]`` lists, coordinates in pixels from the image's top-left corner), or an RLE (``counts``
    a list, COCO's uncompressed form, or a string); a malformed one is a ValueError."""
    from pycocotools import mask as mask_utils

    segmentation = annotation.get("segmentation")
    where = f"{source}: annotation {annotation.get('id')}"
    if isinstance(segmentation, list):
        if not segmentation:
            raise ValueError(f"{where} has an empty segmentation")
        for polygon in segmentation:
            if not (isinstance(polygon, list) and len(polygon) >= 6 and len(polygon) % 2 == 0
                    and all(isinstance(v, (int, float)) and np.isfinite(v) for v in polygon)):
                raise ValueError(f"{where}: a polygon must list at least 3 points as x, y numbers, "
                                 f"got {str(polygon)[:60]}")
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size")
        if list(size or ()) != [height, width]:
            raise ValueError(f"{where}: RLE of size {size}, the image is {[height, width]}")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != height * width:
                raise ValueError(f"{where}: RLE counts must be non-negative integers summing to {height * width}")
            rle = mask_utils.frPyObjects(segmentation, height, width)
        elif isinstance(counts, (str, bytes)):
            rle = {"size": size, "counts": counts.encode() if isinstance(counts, str) else counts}
        else:
            raise ValueError(f"{where}: RLE counts must be a list or a string")
    else:
        raise ValueError(f"{where}: segmentation must be polygons or an RLE, got {type(segmentation).__name__}")
    try:
        with warnings.catch_warnings():  # pycocotools' decoder predates numpy 2's __array__(copy=...)
            warnings.simplefilter("ignore", DeprecationWarning)
            mask = mask_utils.decode(rle)
    except Exception as error:  # pycocotools' decoder raises bare Exceptions on a corrupt string
        raise ValueError(f"{where}: undecodable RLE ({error})") from None
    return mask.astype(bool)


def semantic_label_map(image, annotations, index, source):
    """(H, W) uint8 label map of one image's annotations (the rules in the module docstring)."""
    height, width = int(image["height"]), int(image["width"])
    painted = []
    for order, annotation in enumerate(annotations):
        category = annotation.get("category_id")
        if category not in index:
            raise ValueError(f"{source}: annotation {annotation.get('id')} has category {category!r}, not declared "
                             f"in 'categories'")
        mask = annotation_mask(annotation, height, width, source)
        value = IGNORE_INDEX if annotation.get("iscrowd") else index[category]
        painted.append((-int(mask.sum()), order, mask, value))
    label = np.zeros((height, width), np.uint8)
    for _, _, mask, value in sorted(painted, key=lambda item: item[:2]):  # largest first, then file order
        label[mask] = value
    return label


def image_classes(annotations, index, source):
    """Sorted 0-based object-class indices of an image's annotations."""
    unknown = [a.get("category_id") for a in annotations if a.get("category_id") not in index]
    if unknown:
        raise ValueError(f"{source}: category {unknown[0]!r} is not declared in 'categories'")
    return sorted({index[a["category_id"]] - 1 for a in annotations})


def _check_image_size(root, split, image, stem):
    """An image file present on disk must have the size its entry gives (its mask takes that size)."""
    from PIL import Image

    path = Path(root) / split / image["file_name"]
    if path.is_file():
        with Image.open(path) as img:
            if img.size != (int(image["width"]), int(image["height"])):
                raise ValueError(f"{path}: {img.size[0]}x{img.size[1]} pixels, its annotation entry says "
                                 f"{image['width']}x{image['height']}")


def write_mask(root, split, source, index, entries, stem):
    """Write image ``stem``'s semantic mask; returns ``stem``."""
    image, annotations = entries[stem]
    _check_image_size(root, split, image, stem)
    save_label_png(mask_path(root, split, stem), semantic_label_map(image, annotations, index, source))
    return stem


def load_annotations(path):
    """pycocotools' COCO object of an annotation file (its loading chatter silenced)."""
    from pycocotools.coco import COCO

    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AssertionError) as error:
        raise ValueError(f"{path}: not a COCO instance annotation file ({type(error).__name__}: {error})") from None


def convert_split(cfg, split, failures):
    """Masks of one split; returns {stem: classes} of its images with annotations that did not fail."""
    source = annotation_path(cfg.root, split)
    start = time.monotonic()
    coco = load_annotations(source)
    index = class_indices(coco.dataset.get("categories", []), source)
    entries = {}  # stem -> (image entry, its annotations in file order)
    for image_id, image in coco.imgs.items():
        annotations = coco.imgToAnns.get(image_id, [])
        if annotations:
            entries[image_name(str(image["file_name"]))] = (image, annotations)
    print(f"{split}: {len(entries)} of {len(coco.imgs)} images have annotations ({source.name} read in "
          f"{time.monotonic() - start:.0f} s)", flush=True)
    classes = {}
    for stem in sorted(entries):
        with failures.guard(stem):
            if coco_split(stem) != split:
                raise ValueError(f"{source}: image {stem} is not named COCO_{split}_<id>.jpg")
            classes[stem] = image_classes(entries[stem][1], index, source)
    prepare_outputs([mask_path(cfg.root, split, "x").parent])
    todo = pending_images(list(classes), lambda stem: [mask_path(cfg.root, split, stem)], lambda stem: [source],
                          cfg.overwrite, failures)
    job = functools.partial(write_mask, cfg.root, split, source, index, entries)
    written = sum(1 for _ in map_images(job, todo, cfg.num_workers, split, cfg.quiet, failures))
    print(f"{split}: {written} masks written, {len(classes) - len(todo)} kept", flush=True)
    failed = {name for name, _, _ in failures.items}
    return {stem: labels for stem, labels in classes.items() if stem not in failed}


def _write_lines(path, lines):
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(f"{line}\n" for line in lines))


def _kept_table_lines(path, splits):
    """The lines of an existing label table for the images of other splits than ``splits``."""
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text().splitlines():
        stem = line.split(maxsplit=1)[0] if line.strip() else ""
        parts = stem.split("_")
        if stem and not (len(parts) == 3 and parts[1] in splits):
            kept.append(line)
    return kept


@dataclass(frozen=True)
class CocoConfig:
    root: str = field("Data/COCO14", "COCO 2014 root: annotations/instances_<split>.json, <split>/ images")
    splits: tuple[str, ...] = field(SPLITS, "splits to convert", choices=SPLITS)
    num_workers: int = field(default_workers(), "worker processes", low=0)
    overwrite: bool = field(False, "redo masks that exist (default: keep those newer than their JSON)")
    quiet: bool = field(False, "no progress bars")


def run(cfg):
    root = Path(cfg.root)
    splits = tuple(dict.fromkeys(cfg.splits))
    for split in splits:  # every file checked before any is read
        if not annotation_path(root, split).is_file():
            raise FileNotFoundError(f"annotation file not found: {annotation_path(root, split)} (--root is the "
                                    f"folder of annotations/, train2014/ and val2014/)")
    failures = Failures("coco", root / "SegmentationClass")
    table = _kept_table_lines(root / "cls_labels.txt", splits)
    for split in splits:
        classes = convert_split(cfg, split, failures)
        table += [" ".join([stem] + [str(i) for i in labels]) for stem, labels in classes.items()]
        _write_lines(root / f"{split}.txt", classes)
        print(f"{split}: {len(classes)} images listed in {root / f'{split}.txt'}", flush=True)
    _write_lines(root / "cls_labels.txt", table)
    print(f"image-level labels of {len(table)} images in {root / 'cls_labels.txt'}", flush=True)
    failures.finish()


def main(argv=None):
    return tool_main(run, CocoConfig, argv, __doc__, prog="wsgcn.coco")


if __name__ == "__main__":
    raise SystemExit(main())
