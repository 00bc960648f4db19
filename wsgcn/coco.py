"""MS COCO 2014's instance annotations as the semantic ground truth, label table and lists the
``coco14`` data set reads (docs/datasets.md).

    python -m wsgcn.coco --root ROOT

reads ``ROOT/annotations/instances_{train2014,val2014}.json`` and writes, rasterising the
annotations with pycocotools:

    ROOT/SegmentationClass/<split>/<stem>.png  palette PNG: 0 background, 1..80 the categories in
                                               increasing COCO category id, 255 the crowd regions
    ROOT/cls_labels.txt                        ``<stem> idx idx ...``: the 0-based object classes of
                                               all the image's annotations (crowd ones included)
    ROOT/<split>.txt                           the images with at least one annotation

``<stem>`` is the image's ``file_name`` less its folders and extension
(``COCO_train2014_000000000009``); the image itself is read from ``ROOT/<split>/<stem>.jpg``.
The annotations of an image are painted in decreasing area (pixels), so that a smaller object
lying on a larger one stays visible; a crowd region is painted 255 in its turn.  Images without
annotations get no mask and are in no list.

Resumable: a mask that exists and is newer than its JSON file is kept (``--overwrite True`` redoes
it); the table and the lists are rewritten from the annotations on every run (lines of splits not
converted now are kept).  An image whose annotations cannot be rasterised (an undeclared
category, a polygon with an odd number of coordinates, an RLE of another size or a corrupt one)
or whose entry is wrong (no size, a file on disk of another size, a name shared with another
image) fails alone: named in ``ROOT/SegmentationClass/failures.txt``, left out of the table and
the lists, exit status 1.  A file that is not an instance annotation file (no categories, no
image named ``COCO_<split>_<id>``) stops the run: exit status 2.
"""
import functools
import gc
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsgcn.infra.config import field
from wsgcn.infra.io import prepare_outputs, save_label_png, save_text
from wsgcn.infra.per_image import Failures, map_images, pending_images
from wsgcn.infra.runtime import default_workers
from wsgcn.infra.scripts import tool_main
from wsgcn.seg.dataset import COCO_CATEGORIES, COCO_CATEGORY_IDS, IGNORE_INDEX, coco_split, image_name

SPLITS = ("train2014", "val2014")


def annotation_path(root, split):
    return Path(root) / "annotations" / f"instances_{split}.json"


def mask_dir(root, split):
    return Path(root) / "SegmentationClass" / split


def mask_path(root, split, stem):
    return mask_dir(root, split) / f"{stem}.png"


def _integer(value, what, source):
    """``value`` as an int (COCO files written by other code may quote their ids), else a
    ValueError naming ``what`` and the file."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or (isinstance(value, float) and value != number):
        raise ValueError(f"{source}: {what} must be an integer, got {value!r}")
    return number


def class_indices(categories, source):
    """{COCO category id: class index 1..80} of a file's ``categories``.

    All 80 declared: their rank in increasing id (the official ids, or any other numbering of
    the same 80).  Fewer: the official ids they must be, at their official rank.  A declared
    name other than the official one for its index is a warning (the class names are COCO's).
    """
    if not isinstance(categories, list) or not categories or not all(isinstance(c, dict) for c in categories):
        raise ValueError(f"{source}: no 'categories' declared (a list of {{'id', 'name'}} objects)")
    ids = sorted(_integer(c.get("id"), "a category's 'id'", source) for c in categories)
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


def rle_string_counts(text):
    """The run lengths of COCO's compressed RLE string (pycocotools' ``rleFrString`` format: each
    count in 6-bit characters from '0', 5 bits each with a continuation bit, the last with a sign
    bit; from the third count on, a difference to the count two before)."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    counts, p = [], 0
    while p < len(data):
        value, k, more = 0, 0, True
        while more:
            if p >= len(data):
                raise ValueError("the RLE string ends within a count")
            c = data[p] - 48
            value |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                value |= -1 << (5 * k)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def annotation_mask(annotation, height, width, source):
    """(height, width) bool mask of one annotation: polygons (a list of flat ``[x0, y0, x1, y1,
    ...]`` lists, coordinates in pixels from the image's top-left corner; a part of fewer than
    three points covers nothing and is dropped, as detectron2 and mmdetection drop it), or an
    RLE (``counts`` a list, COCO's uncompressed form, or a string); a malformed one is a
    ValueError."""
    from pycocotools import mask as mask_utils

    segmentation = annotation.get("segmentation")
    where = f"{source}: annotation {annotation.get('id')}"
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if not (isinstance(polygon, list) and len(polygon) % 2 == 0
                    and all(isinstance(v, (int, float)) and np.isfinite(v) for v in polygon)):
                raise ValueError(f"{where}: a polygon must list x, y numbers in pairs, got {str(polygon)[:60]}")
        polygons = [p for p in segmentation if len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size")
        if list(size or ()) != [height, width]:
            raise ValueError(f"{where}: RLE of size {size}, the image is {[height, width]}")
        counts = segmentation["counts"]
        if isinstance(counts, (str, bytes)):
            try:
                runs = rle_string_counts(counts)
            except ValueError as error:
                raise ValueError(f"{where}: corrupt RLE string ({error})") from None
            rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
        elif isinstance(counts, list) and all(isinstance(c, int) for c in counts):
            runs = counts
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            raise ValueError(f"{where}: RLE counts must be a list of integers or a string")
        # pycocotools decodes a short RLE without a word, leaving the rest of the mask undefined
        if min(runs, default=0) < 0 or sum(runs) != height * width:
            raise ValueError(f"{where}: RLE runs must be non-negative and cover the {height}x{width} image, "
                             f"they cover {sum(runs)} pixels")
    else:
        raise ValueError(f"{where}: segmentation must be polygons or an RLE, got {type(segmentation).__name__}")
    with warnings.catch_warnings():  # pycocotools' decoder predates numpy 2's __array__(copy=...)
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def _category(annotation, index, source):
    """The class index 1..80 of an annotation's ``category_id``."""
    category = _integer(annotation.get("category_id"), f"annotation {annotation.get('id')}'s 'category_id'", source)
    if category not in index:
        raise ValueError(f"{source}: annotation {annotation.get('id')} has category {category}, not declared "
                         f"in 'categories'")
    return index[category]


def _is_crowd(annotation, source):
    crowd = _integer(annotation.get("iscrowd", 0), f"annotation {annotation.get('id')}'s 'iscrowd'", source)
    if crowd not in (0, 1):
        raise ValueError(f"{source}: annotation {annotation.get('id')}'s 'iscrowd' is {crowd}, not 0 or 1")
    return crowd == 1


def image_size(image, source):
    """(height, width) of an image entry."""
    size = tuple(_integer(image.get(key), f"image {image.get('file_name')!r}'s {key!r}", source)
                 for key in ("height", "width"))
    if min(size) < 1:
        raise ValueError(f"{source}: image {image.get('file_name')!r} is {size[0]}x{size[1]} pixels")
    return size


def semantic_label_map(image, annotations, index, source):
    """(H, W) uint8 label map of one image's annotations (the rules in the module docstring)."""
    height, width = image_size(image, source)
    painted = []
    for order, annotation in enumerate(annotations):
        value = _category(annotation, index, source)
        if _is_crowd(annotation, source):
            value = IGNORE_INDEX
        mask = annotation_mask(annotation, height, width, source)
        painted.append((-int(mask.sum()), order, mask, value))
    label = np.zeros((height, width), np.uint8)
    for _, _, mask, value in sorted(painted, key=lambda item: item[:2]):  # largest first, then file order
        label[mask] = value
    return label


def image_classes(annotations, index, source):
    """Sorted 0-based object-class indices of an image's annotations."""
    return sorted({_category(a, index, source) - 1 for a in annotations})


def _check_image_file(root, split, stem, size):
    """An image on disk must have the size its entry gives (its mask takes that size)."""
    from PIL import Image

    path = Path(root) / split / f"{stem}.jpg"  # where the coco14 data set reads it
    if path.is_file():
        with Image.open(path) as img:
            if img.size != (size[1], size[0]):
                raise ValueError(f"{path}: {img.size[0]}x{img.size[1]} pixels, its annotation entry says "
                                 f"{size[1]}x{size[0]}")


def write_mask(root, split, source, index, entries, stem):
    """Write image ``stem``'s semantic mask; returns ``stem``.  ``entries[stem]``: the JSON text
    of [its image entry, its annotations]."""
    image, annotations = json.loads(entries[stem])
    _check_image_file(root, split, stem, image_size(image, source))
    save_label_png(mask_path(root, split, stem), semantic_label_map(image, annotations, index, source))
    return stem


def read_annotations(path):
    """(images, annotations, categories) of an instance annotation file, as JSON gives them."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with open(path, "rb") as f:
            raw = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a COCO instance annotation file ({error})") from None
    parts = tuple(raw.get(key) if isinstance(raw, dict) else None for key in ("images", "annotations", "categories"))
    if not all(isinstance(part, list) for part in parts):
        raise ValueError(f"{path}: not a COCO instance annotation file (it needs the lists 'images', "
                         f"'annotations' and 'categories')")
    return parts


def group_by_image(images, annotations, source, split):
    """{stem: (image entry, its annotations in file order)} of the images with annotations; the
    stems given to two images, and the annotations of no listed image, are counted."""
    by_id = {}
    for image in images:
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str) or "id" not in image:
            raise ValueError(f"{source}: every image entry needs an 'id' and a 'file_name', got {str(image)[:80]}")
        by_id[str(image["id"])] = image  # ids compared as text: a file may quote them on one side only
    annotated, orphans = {}, 0
    for annotation in annotations:
        image_id = str(annotation.get("image_id")) if isinstance(annotation, dict) else None
        if image_id in by_id:
            annotated.setdefault(image_id, []).append(annotation)
        else:
            orphans += 1
    if orphans:
        warnings.warn(f"{source}: {orphans} of {len(annotations)} annotations belong to no image of 'images'; "
                      f"left out")
    entries, shared = {}, set()
    for image_id, anns in annotated.items():
        stem = image_name(by_id[image_id]["file_name"])
        if stem in entries:
            shared.add(stem)
        entries[stem] = (by_id[image_id], anns)
    if entries and not any(stem.startswith(f"COCO_{split}_") for stem in entries):
        raise ValueError(f"{source}: no image is named COCO_{split}_<id>.jpg (e.g. {next(iter(entries))!r}); "
                         f"the coco14 data set finds its images from such names")
    return entries, shared


def convert_split(cfg, split, failures):
    """Masks of one split; returns {stem: classes} of its images with annotations that did not fail."""
    source = annotation_path(cfg.root, split)
    start = time.monotonic()
    images, annotations, categories = read_annotations(source)
    index = class_indices(categories, source)
    entries, shared = group_by_image(images, annotations, source, split)
    print(f"{split}: {len(entries)} of {len(images)} images have annotations ({source.name} read in "
          f"{time.monotonic() - start:.0f} s)", flush=True)
    if not entries:
        warnings.warn(f"{source}: no image has an annotation; {split}.txt will be empty")
    classes = {}
    for stem in sorted(entries):
        with failures.guard(stem):
            if stem in shared:
                raise ValueError(f"{source}: two image entries are named {stem}")
            if not stem.startswith(f"COCO_{split}_"):
                raise ValueError(f"{source}: image {stem} is not named COCO_{split}_<id>.jpg")
            classes[stem] = image_classes(entries[stem][1], index, source)
    # What the workers need, as one string per image, and the parsed file let go: forked workers
    # then share compact strings instead of copying the pages of millions of Python objects.
    texts = {stem: json.dumps(entries[stem]) for stem in classes}
    del images, annotations, entries
    gc.collect()
    prepare_outputs([mask_dir(cfg.root, split)])
    todo = pending_images(list(classes), lambda stem: [mask_path(cfg.root, split, stem)], lambda stem: [source],
                          cfg.overwrite, failures)
    job = functools.partial(write_mask, cfg.root, split, source, index, texts)
    written = sum(1 for _ in map_images(job, todo, cfg.num_workers, split, cfg.quiet, failures))
    print(f"{split}: {written} masks written, {len(classes) - len(todo)} kept", flush=True)
    failed = failures.names()
    return {stem: labels for stem, labels in classes.items() if stem not in failed}


def _kept_table_lines(path, splits):
    """The lines of an existing label table for the images of other splits than ``splits``."""
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text().splitlines():
        if line.strip():
            stem = line.split(maxsplit=1)[0]
            try:
                converted_now = coco_split(stem) in splits
            except ValueError:  # not a COCO name: a line the user added, kept
                converted_now = False
            if not converted_now:
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
        save_text(root / f"{split}.txt", "".join(f"{stem}\n" for stem in classes))
        print(f"{split}: {len(classes)} images listed in {root / f'{split}.txt'}", flush=True)
    save_text(root / "cls_labels.txt", "".join(f"{line}\n" for line in table))
    print(f"image-level labels of {len(table)} images in {root / 'cls_labels.txt'}", flush=True)
    failures.finish()


def main(argv=None):
    return tool_main(run, CocoConfig, argv, __doc__, prog="wsgcn.coco")


if __name__ == "__main__":
    raise SystemExit(main())
