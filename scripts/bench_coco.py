"""Time and memory of ``python -m wsgcn.coco`` at COCO's scale, on annotations made up here.

    python scripts/bench_coco.py --out /tmp/coco_bench --num_images 82783 [--num_workers 2]

Writes ``OUT/annotations/instances_train2014.json`` with the statistics of the real
train2014 file (82,783 images of 640 x 480, of which 99.2 % annotated; 7.3 annotations per
annotated image, polygons of about 30 points with coordinates to two decimals, 1.2 % crowd
regions as uncompressed RLE, i.e. about 330 MB for the full count), no image files (the size
check is skipped for a missing file), then converts it and prints the wall time, the images per
second and the peak resident memory of the converter's largest process.
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from wsgcn.seg.dataset import COCO_CATEGORIES, COCO_CATEGORY_IDS

HEIGHT, WIDTH = 480, 640


def polygon(rng):
    """An irregular star-shaped polygon of about 30 points: flat [x0, y0, x1, y1, ...] and its area."""
    n = int(rng.integers(12, 50))
    cy, cx = rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH)
    radius = rng.uniform(8, 160) * rng.uniform(0.7, 1.3, n)
    angle = np.sort(rng.uniform(0, 2 * np.pi, n))
    x = np.clip(cx + radius * np.cos(angle), 0, WIDTH - 1)
    y = np.clip(cy + radius * np.sin(angle), 0, HEIGHT - 1)
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    return [round(float(v), 2) for v in np.stack([x, y], 1).ravel()], float(area)


def crowd_rle(rng):
    """A rectangle as COCO's uncompressed RLE (column-major run lengths, starting with zeros) and its area."""
    y0, x0 = int(rng.integers(0, HEIGHT - 40)), int(rng.integers(0, WIDTH - 40))
    h, w = int(rng.integers(20, HEIGHT - y0)), int(rng.integers(20, WIDTH - x0))
    counts = [x0 * HEIGHT + y0]
    for _ in range(w - 1):
        counts += [h, HEIGHT - h]
    counts += [h, HEIGHT * WIDTH - sum(counts) - h]
    return {"size": [HEIGHT, WIDTH], "counts": counts}, float(h * w)


def write_annotations(out, num_images, seed=0):
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "file_name": f"COCO_train2014_{image_id:012d}.jpg",
                       "height": HEIGHT, "width": WIDTH})
        if rng.random() < 0.008:  # COCO's images without annotations
            continue
        for _ in range(max(1, int(rng.poisson(7.3)))):
            crowd = rng.random() < 0.012
            segmentation, area = crowd_rle(rng) if crowd else polygon(rng)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "area": area, "bbox": [0, 0, 1, 1],
                                "category_id": int(rng.choice(COCO_CATEGORY_IDS)), "iscrowd": int(crowd),
                                "segmentation": segmentation if crowd else [segmentation]})
    categories = [{"id": int(i), "name": name, "supercategory": "s"}
                  for i, name in zip(COCO_CATEGORY_IDS, COCO_CATEGORIES)]
    path = Path(out) / "annotations" / "instances_train2014.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"info": {}, "licenses": [], "images": images, "annotations": annotations,
                                "categories": categories}))
    return path, len(annotations)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--num_images", type=int, default=82783)
    parser.add_argument("--num_workers", type=int, default=2)
    args = parser.parse_args(argv)
    path, count = write_annotations(args.out, args.num_images)
    print(f"{path}: {args.num_images} images, {count} annotations, {path.stat().st_size / 2**20:.0f} MiB", flush=True)
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "wsgcn.coco", "--root", args.out, "--splits", "train2014",
                    "--num_workers", str(args.num_workers), "--quiet", "True"], check=True)
    seconds = time.monotonic() - start
    masks = len(list((Path(args.out) / "SegmentationClass" / "train2014").glob("*.png")))
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    print(f"converted {masks} images in {seconds:.0f} s ({masks / seconds:.1f} images/s, "
          f"{args.num_workers} workers); peak resident memory of one process {peak:.2f} GiB")


if __name__ == "__main__":
    main()
