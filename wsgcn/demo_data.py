"""A small synthetic data set in PASCAL VOC or MS COCO format, for the quick-start demo and the tests.

    python -m wsgcn.demo_data --out Data/demo --num_train 48 --num_val 16 --seed 0 [--format voc|coco]
                              [--image_size demo|voc]

writes, under ``out``, with ``--format voc`` (the default)::

    VOC2012/JPEGImages/<name>.jpg             RGB JPEG, quality 90
    VOC2012/SegmentationClassAug/<name>.png   palette PNG, 0 = background, 1..20 = class, 255 = void
    VOC2012/Annotations/<name>.xml            VOC XML, one <object> per visible object
    cls_labels.txt                            ``name idx idx ...`` (0-based object classes), both splits
    train.txt, val.txt                        bare image names
    demo.json                                 the generation parameters, written last

and with ``--format coco``, the official MS COCO 2014 layout::

    train2014/COCO_train2014_<id:012d>.jpg    RGB JPEG, quality 90; num_train scenes, then one without objects
    val2014/COCO_val2014_<id:012d>.jpg        num_val scenes, then one without objects
    annotations/instances_train2014.json      info, licenses, images, annotations, the 80 categories
    annotations/instances_val2014.json
    demo.json                                 the generation parameters (with "format": "coco"), written last

Image ids are 1, 2, ... over train then val; annotation ids are unique over both files.  No
label table or list: ``python -m wsgcn.coco`` derives them, with the semantic ground truth.

Each scene is a cluttered, desaturated background with one to three objects of
:data:`DEMO_CLASSES` on it.  Every class has its own saturated colour family, its own texture
and its own shape family, so a CAM network trained from scratch on a CPU for a few hundred
steps can tell them apart from image-level labels alone; the clutter, occluding bars,
overlapping objects, truncation at the image border and odd image sizes keep the later
stages (boundaries, random walk, GCN, CRF) from having a trivial job.

VOC's ground truth is exact by construction: a class is in an image's labels (XML and
``cls_labels.txt``) if and only if it has pixels in the ground truth, and, as in VOC, a void
band covers every object boundary (object/background and object/object).

COCO's annotations are exact too, for the semantic ground truth a converter paints from them
(instances in decreasing area, the smaller on top): the objects of a COCO scene are drawn
larger first, so the painted map is what the image shows.  An object is annotated with
polygons along pixel edges (:func:`trace_polygons`) of its whole extent less the occluding bars
(annotations overlap where a smaller object lies on a larger one, as in COCO), so a polygon
rasteriser gives back its mask exactly; there is no void band.  A crowd region (``iscrowd`` 1,
an uncompressed RLE of its visible pixels) is the smallest object of every image whose index is
a multiple of :data:`CROWD_EVERY` and which has two objects or more.  The demo classes are COCO
categories under COCO's names (:data:`COCO_NAME`: aeroplane is airplane).

Generation is deterministic: image ``i`` draws all its randomness from
``default_rng([seed, i])``, so a seed gives byte-identical files, and the first images do not
change when more images are asked for.
"""
import colorsys
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from wsgcn.infra.config import field
from wsgcn.infra.io import atomic_path, save_label_png, save_text
from wsgcn.infra.scripts import tool_main
from wsgcn.seg.dataset import COCO_CATEGORIES, COCO_CATEGORY_IDS
from wsgcn.seg.voc import CAT_INDEX

FORMAT_VERSION = 1

# The five object classes and how each looks.  Hues are spread round the colour wheel and kept
# saturated, while everything in the background is desaturated, so colour alone separates the
# classes; texture and shape are second, independent cues.  Textures are laid out in image
# coordinates (not rotated with the object) and are invariant to horizontal flips, so the
# flip augmentation of CAM training does not blur them into each other.
DEMO_CLASSES = ["aeroplane", "bird", "car", "cat", "person"]
CLASS_STYLE = {
    #            hue (deg)  texture             shape
    "aeroplane": dict(hue=210, texture="hstripes", shape="triangle"),
    "bird":      dict(hue=52,  texture="dots",     shape="ellipse"),
    "car":       dict(hue=0,   texture="checker",  shape="roundrect"),
    "cat":       dict(hue=285, texture="blobs",    shape="star"),
    "person":    dict(hue=125, texture="vstripes", shape="person"),
}

IMAGE_SIZE_RANGE = (97, 161)     # inclusive bounds of height and width, pixels
IMAGE_SIZES = ("demo", "voc")    # demo: IMAGE_SIZE_RANGE; voc: PASCAL VOC's (long side 500, some smaller)
OBJECT_SIZE_RANGE = (0.17, 0.33)  # object half-length as a fraction of the shorter image side
MIN_VISIBLE_PIXELS = 80          # an object with fewer labelled (non-void) pixels is dropped
VOID_RADIUS = 1                  # void band: pixels this close (Chebyshev) to another instance
JPEG_QUALITY = 90
FORMATS = ("voc", "coco")

# COCO: the demo classes' categories, and the official supercategories as runs over
# COCO_CATEGORIES (in increasing category id): person, then 8 vehicles, 5 outdoor objects, ...
COCO_NAME = {"aeroplane": "airplane", "bird": "bird", "car": "car", "cat": "cat", "person": "person"}
COCO_SUPERCATEGORY_RUNS = (("person", 1), ("vehicle", 8), ("outdoor", 5), ("animal", 10), ("accessory", 5),
                           ("sports", 10), ("kitchen", 7), ("food", 10), ("furniture", 6), ("electronic", 6),
                           ("appliance", 5), ("indoor", 7))
COCO_SPLITS = ("train2014", "val2014")
CROWD_EVERY = 8  # a COCO image whose index is a multiple of this, with 2+ objects, has a crowd region

_NAME_RE = re.compile(r"^demo_\d{6}$")
_COCO_NAME_RE = re.compile(r"^COCO_(train|val)2014_\d{12}$")


def demo_image_name(index):
    """Name of the ``index``-th demo image (train first, then val): ``demo_000000``, ..."""
    return f"demo_{index:06d}"


def coco_image_name(split, image_id):
    """COCO's name of an image: ``COCO_train2014_000000000001`` (``split`` train2014 or val2014)."""
    return f"COCO_{split}_{image_id:012d}"


def coco_images(num_train, num_val):
    """The COCO set's images as (split, index, empty), train first: ``num_train`` scenes and one
    image without objects, then ``num_val`` scenes and one without objects.  An image's id is
    ``1 + index``, and scene ``index`` draws from ``default_rng([seed, index])``."""
    rows = [("train2014", i, False) for i in range(num_train)] + [("train2014", num_train, True)]
    first_val = num_train + 1
    rows += [("val2014", first_val + i, False) for i in range(num_val)] + [("val2014", first_val + num_val, True)]
    return rows


def demo_params(num_train, num_val, seed, fmt="voc", image_size="demo"):
    """The parameters recorded in ``demo.json``; equal parameters mean an up-to-date data set.
    VOC's record has no ``format``, the demo size's no ``image_size`` (they were written so
    before COCO and VOC-sized images existed, and their bytes stay)."""
    params = {"format_version": FORMAT_VERSION, "num_train": int(num_train), "num_val": int(num_val),
              "seed": int(seed)}
    if fmt != "voc":
        params["format"] = fmt
    if image_size != "demo":
        params["image_size"] = image_size
    return params


def is_up_to_date(out_dir, num_train=48, num_val=16, seed=0, fmt="voc", image_size="demo"):
    """True if ``out_dir/demo.json`` records exactly these parameters."""
    path = Path(out_dir) / "demo.json"
    try:
        return json.loads(path.read_text()) == demo_params(num_train, num_val, seed, fmt, image_size)
    except (OSError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------
# Drawing primitives.  Everything works on whole (H, W) coordinate grids; the images are tiny,
# so evaluating an implicit shape or a texture over the full grid costs well under a millisecond.

@dataclass
class SceneObject:
    """One object of a scene: its class and its (H, W) bool mask, before occlusion."""
    cls: str
    mask: np.ndarray
    colour: np.ndarray      # (3,) float RGB in 0..1, the base colour
    texture: np.ndarray     # (H, W) float in 0..1, where the colour is darkened
    depth: float            # how much the texture darkens the colour
    shading: np.ndarray     # (H, W) float, multiplicative lighting across the object


def _local_frame(yy, xx, cy, cx, theta):
    """Coordinates (u, v) of every pixel in a frame centred on (cy, cx) and rotated by theta.

    yy, xx: (H, W) pixel-centre coordinates; u runs along the rotated x axis, v along y (down).
    """
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(theta), np.sin(theta)
    return c * dx + s * dy, -s * dx + c * dy


def _shape_mask(shape, u, v, a, b, rng):
    """(H, W) bool mask of a shape of half-length ``a`` and half-width ``b`` in local coordinates."""
    if shape == "ellipse":
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if shape == "roundrect":
        # A superellipse: a rectangle whose corners are rounded, without case analysis.
        return np.abs(u / a) ** 4 + np.abs(v / b) ** 4 <= 1.0
    if shape == "triangle":
        # Isosceles triangle, apex at u = +a, base at u = -a of half-width b.
        return (u >= -a) & (np.abs(v) <= b * (a - u) / (2.0 * a))
    if shape == "star":
        lobes = int(rng.integers(5, 7))
        amp = rng.uniform(0.22, 0.32)
        phase = rng.uniform(0, 2 * np.pi)
        radius = np.hypot(u, v)
        angle = np.arctan2(v, u)
        return radius <= a * (1.0 - amp + amp * np.cos(lobes * angle + phase))
    if shape == "person":
        # Upright figure of height 2a: a round head on top of an elongated body (v points down).
        head_r = 0.24 * a
        head = u ** 2 + (v + a - head_r) ** 2 <= head_r ** 2
        body = (u / (0.42 * a)) ** 2 + ((v - 0.22 * a) / (0.78 * a)) ** 2 <= 1.0
        neck = (np.abs(u) <= 0.1 * a) & (v >= -a + head_r) & (v <= -0.5 * a)
        return head | body | neck
    raise ValueError(f"unknown shape {shape!r}")


def _stripes(yy, xx, period, angle, phase):
    """Square-ish stripes in 0..1 with the given period (px), normal direction angle, phase."""
    t = (np.cos(angle) * yy + np.sin(angle) * xx) * (2 * np.pi / period) + phase
    # tanh sharpens the sinusoid into bars with soft edges: crisper texture, no aliasing.
    return 0.5 + 0.5 * np.tanh(2.5 * np.sin(t))


def _class_texture(kind, yy, xx, rng):
    """(H, W) float texture in 0..1 (1 = darkened) of one object, in image coordinates."""
    if kind == "hstripes":
        return _stripes(yy, xx, rng.uniform(6.0, 8.0), np.deg2rad(rng.uniform(-8, 8)),
                        rng.uniform(0, 2 * np.pi))
    if kind == "vstripes":
        return _stripes(yy, xx, rng.uniform(6.0, 8.0), np.deg2rad(90 + rng.uniform(-8, 8)),
                        rng.uniform(0, 2 * np.pi))
    if kind == "checker":
        period = rng.uniform(8.0, 11.0)
        oy, ox = rng.uniform(0, period, size=2)
        prod = np.sin((yy - oy) * (np.pi / period)) * np.sin((xx - ox) * (np.pi / period))
        return 0.5 + 0.5 * np.tanh(4.0 * prod)
    if kind == "dots":
        period = rng.uniform(7.0, 9.5)
        oy, ox = rng.uniform(0, period, size=2)
        dy = (yy - oy) % period - period / 2
        dx = (xx - ox) % period - period / 2
        dot_r = 0.28 * period
        return 1.0 / (1.0 + np.exp(3.0 * (np.hypot(dy, dx) - dot_r)))
    if kind == "blobs":
        # Thresholded smooth noise: irregular dark patches, like a calico coat.
        noise = ndimage.gaussian_filter(rng.standard_normal(yy.shape), sigma=2.5, mode="wrap")
        noise /= noise.std() + 1e-8
        return 1.0 / (1.0 + np.exp(-3.0 * (noise - 0.2)))
    raise ValueError(f"unknown texture {kind!r}")


def _hsv(h_deg, s, v):
    return np.array(colorsys.hsv_to_rgb((h_deg % 360) / 360.0, s, v), np.float32)


def _dull_colour(rng, lo=0.15, hi=0.9):
    """A desaturated RGB colour (saturation below ~0.25): grey with a faint tint of any hue."""
    grey = rng.uniform(lo, hi)
    return np.clip(grey * (1.0 + rng.uniform(-0.12, 0.12, size=3)), 0, 1).astype(np.float32)


def _smooth_field(rng, shape, grid, colour_fn):
    """(H, W, 3) low-frequency colour field: random colours on a coarse grid, cubic-interpolated."""
    h, w = shape
    gh, gw = grid
    coarse = np.stack([colour_fn(rng) for _ in range(gh * gw)]).reshape(gh, gw, 3)
    # map_coordinates rather than zoom: the output has exactly (H, W) pixels for any size.
    ys = np.linspace(0, gh - 1, h, dtype=np.float32)
    xs = np.linspace(0, gw - 1, w, dtype=np.float32)
    coords = np.stack(np.meshgrid(ys, xs, indexing="ij"))
    return np.stack([ndimage.map_coordinates(coarse[..., c], coords, order=3, mode="nearest")
                     for c in range(3)], axis=-1)


def _blend(img, mask, colour_map, alpha=1.0):
    """Paint ``colour_map`` ((H, W, 3) or (3,)) over ``img`` where ``mask``, with opacity alpha."""
    m = mask[..., None].astype(np.float32) * alpha
    img *= 1.0 - m
    img += m * colour_map


def _random_clutter_shape(rng, yy, xx, size):
    """(H, W) bool mask of a distractor: ellipse, rotated rectangle or straight line/bar."""
    h, w = yy.shape
    cy, cx = rng.uniform(-0.1, 1.1) * h, rng.uniform(-0.1, 1.1) * w
    u, v = _local_frame(yy, xx, cy, cx, rng.uniform(0, np.pi))
    kind = rng.choice(["ellipse", "rect", "line"], p=[0.35, 0.35, 0.3])
    if kind == "line":
        length, width = rng.uniform(0.4, 1.0) * max(h, w), rng.uniform(0.8, 2.5)
        return (np.abs(u) <= length / 2) & (np.abs(v) <= width)
    a = rng.uniform(0.06, 0.3) * size
    b = a * rng.uniform(0.3, 1.0)
    if kind == "ellipse":
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    return (np.abs(u) <= a) & (np.abs(v) <= b)


def _clutter_texture(rng, yy, xx, colour):
    """(H, W, 3) fill of a distractor: flat, grainy, diagonal-striped or a gradient (all dull)."""
    kind = rng.choice(["flat", "grain", "diagonal", "gradient"])
    if kind == "flat":
        return colour
    if kind == "grain":
        grain = rng.normal(0.0, 0.06, size=yy.shape).astype(np.float32)
        return colour * (1.0 + grain[..., None])
    if kind == "diagonal":
        # Diagonal stripes only: horizontal/vertical ones belong to object classes.
        angle = np.deg2rad(rng.choice([45.0, 135.0]) + rng.uniform(-10, 10))
        t = _stripes(yy, xx, rng.uniform(4.0, 12.0), angle, rng.uniform(0, 2 * np.pi))
        return colour * (1.0 - rng.uniform(0.1, 0.3) * t)[..., None]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * yy + np.sin(angle) * xx) / max(yy.shape)
    return colour * (1.0 + 0.3 * (ramp - ramp.mean()))[..., None]


# ----------------------------------------------------------------------------------------------
# One scene.

def _image_size(rng, index, image_size="demo"):
    """(H, W).  demo: each side in IMAGE_SIZE_RANGE and not a multiple of 4, at least one side
    odd.  voc: PASCAL VOC's, a long side of 500 (every fourth image 300..450) and a short side
    of 0.66..0.75 of it (500 x 375, 500 x 333, ...).

    Orientation alternates with the index, so any two consecutive images give both a
    landscape and a portrait one; the sides are drawn distinct, so no image is square.
    """
    if image_size == "voc":
        long_side = 500 if index % 4 != 3 else int(rng.integers(300, 451))
        short_side = int(round(long_side * rng.uniform(0.66, 0.75)))
        return (long_side, short_side) if index % 2 else (short_side, long_side)
    lo, hi = IMAGE_SIZE_RANGE
    sizes = np.arange(lo, hi + 1)
    odd = sizes[sizes % 2 == 1]
    not_mult4 = sizes[sizes % 4 != 0]
    first = int(rng.choice(odd))
    second = int(rng.choice(not_mult4[not_mult4 != first]))
    long_side, short_side = max(first, second), min(first, second)
    return (long_side, short_side) if index % 2 else (short_side, long_side)


def _make_object(rng, cls, yy, xx):
    """Draw an object of class ``cls`` at a random place, size, rotation and colour."""
    style = CLASS_STYLE[cls]
    h, w = yy.shape
    a = rng.uniform(*OBJECT_SIZE_RANGE) * min(h, w)
    # Centres near the border are allowed: such objects are truncated, as in VOC.
    cy, cx = rng.uniform(0.12, 0.88) * h, rng.uniform(0.12, 0.88) * w
    if style["shape"] == "person":
        theta = np.deg2rad(rng.uniform(-20, 20))        # people stand roughly upright
        b = a
    else:
        theta = rng.uniform(0, 2 * np.pi)
        aspect = {"ellipse": (0.55, 0.85), "roundrect": (0.45, 0.7), "triangle": (0.5, 0.8),
                  "star": (1.0, 1.0)}[style["shape"]]
        b = a * rng.uniform(*aspect)
    u, v = _local_frame(yy, xx, cy, cx, theta)
    mask = _shape_mask(style["shape"], u, v, a, b, rng)

    colour = _hsv(style["hue"] + rng.uniform(-8, 8), rng.uniform(0.65, 0.95), rng.uniform(0.6, 0.95))
    texture = _class_texture(style["texture"], yy, xx, rng).astype(np.float32)
    # Lighting: a linear ramp across the object in a random direction, +-15 % brightness.
    light = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(light) * (yy - cy) + np.sin(light) * (xx - cx)) / (2 * a)
    shading = (1.0 + 0.3 * np.clip(ramp, -0.5, 0.5)).astype(np.float32)
    return SceneObject(cls, mask, colour, texture, rng.uniform(0.35, 0.55), shading)


def _void_band(inst):
    """(H, W) bool: pixels with a different instance within VOID_RADIUS px (3x3 window for 1).

    inst: (H, W) int instance map, 0 = background.  A pixel is void iff the grey dilation and
    grey erosion (max and min filters) of the map differ there, which marks both sides of
    every object/background and object/object boundary;
    with VOID_RADIUS = 1 the band is 2 px wide, about VOC's 5 px at our ~4x smaller image scale.
    The filters reflect at the image border, so the border itself is not a boundary.
    """
    size = 2 * VOID_RADIUS + 1
    return ndimage.maximum_filter(inst, size=size) != ndimage.minimum_filter(inst, size=size)


def _compose_instances(objects, occluder):
    """(H, W) int instance map: object k -> k + 1 (later on top), occluders and background -> 0."""
    inst = np.zeros(occluder.shape, np.int32)
    for k, obj in enumerate(objects):
        inst[obj.mask] = k + 1
    inst[occluder] = 0
    return inst


def _settle_objects(objects, occluder, void_band=True):
    """Drop objects whose labelled area, after occlusion and the void band, is too small.

    The smallest offender goes first and the rest are re-measured, because removing an
    object can uncover those beneath it.  Returns (kept objects, instance map, void band);
    without ``void_band`` (COCO has none) the band is all False and every visible pixel counts.
    """
    objects = list(objects)
    while True:
        inst = _compose_instances(objects, occluder)
        void = _void_band(inst) if void_band else np.zeros(inst.shape, bool)
        labelled = np.bincount(inst[~void].ravel(), minlength=len(objects) + 1)[1:]
        if not objects or labelled.min() >= MIN_VISIBLE_PIXELS:
            return objects, inst, void
        objects.pop(int(np.argmin(labelled)))


def _object_extent(obj, occluder):
    """(H, W) bool: the object's whole extent less the occluders, holes filled: what a COCO polygon
    annotates, including the parts a smaller object drawn on top hides."""
    return ndimage.binary_fill_holes(obj.mask & ~occluder)


def _place_objects(rng, yy, xx, index, coco):
    """Draw the objects and the occluding bars of a scene (not yet painted).

    Returns (kept objects in drawing order, [(bar (H, W) bool, colour (3,))], occluder (H, W) bool,
    instance map, void band) as :func:`_settle_objects` gives them.
    """
    h, w = yy.shape
    # Objects: mostly one or two, sometimes three; classes drawn independently, so repeats occur.
    # Occluders (poles, bars) go on top of the objects and are background in the ground truth.
    for _attempt in range(100):
        n_obj = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
        classes = rng.choice(DEMO_CLASSES, size=n_obj)
        objects = [_make_object(rng, str(c), yy, xx) for c in classes]
        occluder = np.zeros((h, w), bool)
        occluder_masks = []
        for _ in range(int(rng.choice([0, 1, 2], p=[0.65, 0.25, 0.1]))):
            cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
            u, v = _local_frame(yy, xx, cy, cx, rng.uniform(0, np.pi))
            bar = (np.abs(v) <= rng.uniform(1.5, 3.5)) & (np.abs(u) <= rng.uniform(0.3, 0.8) * max(h, w))
            occluder_masks.append((bar, _dull_colour(rng, 0.1, 0.9)))
            occluder |= bar
        if coco:
            # A COCO-to-semantic converter paints the instances in decreasing area, so that a
            # smaller object lying on a larger one stays visible; drawing them in that order makes
            # its ground truth what the image shows.  (sort is stable: ties keep the drawn order.)
            objects.sort(key=lambda obj: -int(_object_extent(obj, occluder).sum()))
        objects, inst, void = _settle_objects(objects, occluder, void_band=not coco)
        if objects:
            return objects, occluder_masks, occluder, inst, void
    # Every attempt dropping every object is vanishingly unlikely.
    raise RuntimeError(f"could not place a visible object in demo image {index}")  # pragma: no cover


@dataclass
class _Scene:
    """One rendered scene: the image and what is in it."""
    image: np.ndarray       # (H, W, 3) uint8 RGB
    objects: list           # the kept SceneObjects in drawing order (later on top)
    occluder: np.ndarray    # (H, W) bool, the bars drawn over the objects
    inst: np.ndarray        # (H, W) int32 visible instance map: object k -> k + 1, 0 = background
    void: np.ndarray        # (H, W) bool void band (all False for COCO)


def _render_scene(seed, index, coco=False, empty=False, image_size="demo"):
    """Draw scene ``index``: VOC's (void band), COCO's (larger objects first, no void band), or
    with ``empty`` the background alone (no objects, no bars).  All randomness comes from
    ``default_rng([seed, index])``; VOC and COCO draw the same numbers in the same order (only the
    stacking order and the void band differ), and VOC's scenes are those written before COCO existed.
    """
    rng = np.random.default_rng([seed, index])
    h, w = _image_size(rng, index, image_size)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5

    # Background: a smooth dull colour field, then distractors under the objects.
    img = _smooth_field(rng, (h, w), tuple(rng.integers(3, 6, size=2)),
                        lambda r: _dull_colour(r, 0.3, 0.85))
    for _ in range(int(rng.integers(4, 10))):
        mask = _random_clutter_shape(rng, yy, xx, min(h, w))
        colour = _dull_colour(rng)
        _blend(img, mask, _clutter_texture(rng, yy, xx, colour), alpha=rng.uniform(0.6, 1.0))

    if empty:
        objects, occluder_masks = [], []
        occluder, inst, void = np.zeros((h, w), bool), np.zeros((h, w), np.int32), np.zeros((h, w), bool)
    else:
        objects, occluder_masks, occluder, inst, void = _place_objects(rng, yy, xx, index, coco)

    for obj in objects:
        fill = obj.colour * ((1.0 - obj.depth * obj.texture) * obj.shading)[..., None]
        _blend(img, obj.mask, fill)
    for bar, colour in occluder_masks:
        _blend(img, bar, colour)
    img += rng.normal(0.0, 0.015, size=img.shape).astype(np.float32)  # sensor noise
    image = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return _Scene(image, objects, occluder, inst, void)


def make_scene(seed, index, image_size="demo"):
    """Generate one VOC image with its ground truth and objects.

    Returns (image (H, W, 3) uint8 RGB, gt (H, W) uint8 with 0 / class+1 / 255,
    objects: list of (class name, (xmin, ymin, xmax, ymax) 1-based inclusive visible box)).
    """
    scene = _render_scene(seed, index, image_size=image_size)
    class_ids = np.array([0] + [CAT_INDEX[o.cls] + 1 for o in scene.objects], np.uint8)
    gt = class_ids[scene.inst]
    gt[scene.void] = 255

    boxes = []
    for k, obj in enumerate(scene.objects, start=1):
        ys, xs = np.nonzero(scene.inst == k)
        boxes.append((obj.cls, (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1)))
    return scene.image, gt, boxes


@dataclass
class CocoInstance:
    """One COCO annotation of a scene: its demo class, the pixels it annotates, and whether it is a crowd."""
    cls: str
    mask: np.ndarray        # (H, W) bool
    iscrowd: bool


def make_coco_scene(seed, index, empty=False):
    """Generate one COCO image and its annotations.

    Returns (image (H, W, 3) uint8 RGB, instances: list of :class:`CocoInstance` in drawing
    order, so in decreasing area).  A polygon annotation covers the object's whole extent less the
    occluders, holes filled (:func:`_object_extent`), so annotations overlap where a smaller
    object lies on a larger one, as in COCO.  In an image whose index is a multiple of
    :data:`CROWD_EVERY` and which has two objects or more, the last-drawn (smallest) object is a
    crowd region: its visible pixels, as an RLE.  ``empty``: background only, no instances.
    """
    scene = _render_scene(seed, index, coco=True, empty=empty)
    crowd = index % CROWD_EVERY == 0 and len(scene.objects) >= 2
    instances = [CocoInstance(obj.cls, _object_extent(obj, scene.occluder), False) for obj in scene.objects]
    if crowd:
        # The top object: nothing but occluders hides it, so its visible pixels are its extent
        # less the occluders, without holes filled (an RLE need not fill them).
        instances[-1] = CocoInstance(instances[-1].cls, scene.inst == len(scene.objects), True)
    return scene.image, instances


# ----------------------------------------------------------------------------------------------
# COCO's two mask encodings, written here so that writing the data set needs no pycocotools.

# The four directions of a boundary edge, clockwise on screen (y points down), as (dx, dy).
_EDGE_STEPS = np.array([(1, 0), (0, 1), (-1, 0), (0, -1)])   # east, south, west, north
_TURNS = (1, 0, 3)  # what an outline tries at a corner, in order: turn right, go straight, turn left


def trace_polygons(mask):
    """COCO polygons of ``mask``: one flat ``[x0, y0, x1, y1, ...]`` int list per 4-connected
    component, its outline along the pixel edges, with vertices at pixel corners and only there
    where the outline turns.  A polygon rasteriser (pycocotools) gives back exactly ``mask``.

    mask: (H, W) bool without holes (fill them first: a polygon cannot leave one out).  The
    outline runs clockwise on screen, the object on its right.  Where two object pixels touch only
    at a corner, the outline turns right, staying on the pixel it came along: diagonal neighbours
    are separate polygons, and a pocket of background that opens only at such a corner stays out.
    Raises ValueError for a mask with a hole.
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    padded = np.pad(mask, 1)
    # leaves[d, y, x]: a boundary edge leaves corner (x, y) in direction d; the edges of a pixel
    # (r, c) start at its corners (c, r) east, (c + 1, r) south, (c + 1, r + 1) west, (c, r + 1) north.
    leaves = np.zeros((4, h + 1, w + 1), bool)
    leaves[0, :h, :w] = mask & ~padded[:-2, 1:-1]    # top edges: no object pixel above
    leaves[1, :h, 1:] = mask & ~padded[1:-1, 2:]     # right edges
    leaves[2, 1:, 1:] = mask & ~padded[2:, 1:-1]     # bottom edges
    leaves[3, 1:, :w] = mask & ~padded[1:-1, :-2]    # left edges
    direction, y, x = np.nonzero(leaves)
    if not len(direction):
        return []
    edge_id = np.full(leaves.shape, -1, np.int64)
    edge_id[direction, y, x] = np.arange(len(direction))
    end_x, end_y = x + _EDGE_STEPS[direction, 0], y + _EDGE_STEPS[direction, 1]
    # Each edge's successor: the first of right, straight, left that leaves its end corner.  Only
    # at a corner touched diagonally do two edges leave; elsewhere exactly one does.
    following = np.full(len(direction), -1, np.int64)
    for turn in _TURNS:
        candidate = edge_id[(direction + turn) % 4, end_y, end_x]
        following = np.where(following < 0, candidate, following)

    polygons, done = [], np.zeros(len(direction), bool)
    following = following.tolist()
    for start in range(len(direction)):
        if done[start]:
            continue
        cycle, edge = [], start
        while not done[edge]:
            done[edge] = True
            cycle.append(edge)
            edge = following[edge]
        cycle = np.array(cycle)
        # A vertex where the direction changes; the collinear corners between are dropped.
        turns = direction[cycle] != np.roll(direction[cycle], 1)
        xs, ys = x[cycle][turns], y[cycle][turns]
        # Shoelace: positive for an outer outline (clockwise on screen), negative for a hole's.
        if np.dot(xs, np.roll(ys, -1)) - np.dot(np.roll(xs, -1), ys) < 0:
            raise ValueError("trace_polygons: the mask has a hole (fill it first)")
        polygons.append(np.stack([xs, ys], axis=1).ravel().tolist())
    return polygons


def uncompressed_rle(mask):
    """COCO's uncompressed RLE of ``mask`` ((H, W) bool): ``{"counts": [...], "size": [H, W]}``,
    alternate runs of 0s and 1s down the columns (column-major), the first run of 0s (maybe empty)."""
    mask = np.asarray(mask, bool)
    flat = mask.ravel(order="F")
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], starts, [flat.size]])).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _mask_bbox(mask):
    """COCO's ``[x, y, width, height]`` of the pixels of ``mask`` ((H, W) bool, not empty)."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0]


# ----------------------------------------------------------------------------------------------
# Writing.

def _annotation_xml(name, height, width, boxes):
    """VOC-style annotation text for one image."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{name}.jpg"
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "WSGCN synthetic demo"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1"
    for cls, (x0, y0, x1, y1) in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = cls
        ET.SubElement(obj, "pose").text = "Unspecified"
        truncated = x0 == 1 or y0 == 1 or x1 == width or y1 == height
        ET.SubElement(obj, "truncated").text = str(int(truncated))
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", x0), ("ymin", y0), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _remove_stale(folders, pattern, keep):
    """Remove the demo files left by an earlier, larger generation: in each of ``folders``
    (those that exist), the files whose name matches ``pattern`` (a glob, then _NAME_RE or
    _COCO_NAME_RE on the stem) and is not in ``keep``."""
    for folder in folders:
        if folder.is_dir():
            for path in folder.glob(pattern):
                if (_NAME_RE.match(path.stem) or _COCO_NAME_RE.match(path.stem)) and path.stem not in keep:
                    path.unlink()


def _save_jpeg(path, image):
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=JPEG_QUALITY)


def coco_categories():
    """The 80 official COCO categories: ``{"id", "name", "supercategory"}`` in increasing id."""
    supercategories = [name for name, count in COCO_SUPERCATEGORY_RUNS for _ in range(count)]
    return [{"id": cat_id, "name": name, "supercategory": supercategory}
            for cat_id, name, supercategory in zip(COCO_CATEGORY_IDS, COCO_CATEGORIES, supercategories)]


def _coco_annotation(ann_id, image_id, instance):
    """One entry of ``annotations``: polygons for an object, an uncompressed RLE for a crowd."""
    mask = instance.mask
    segmentation = uncompressed_rle(mask) if instance.iscrowd else trace_polygons(mask)
    category_id = COCO_CATEGORY_IDS[COCO_CATEGORIES.index(COCO_NAME[instance.cls])]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "segmentation": segmentation,
            "area": int(mask.sum()), "bbox": _mask_bbox(mask), "iscrowd": int(instance.iscrowd)}


def _make_coco_dataset(out_dir, num_train, num_val, seed):
    """The COCO layout of the module docstring, less demo.json."""
    rows = coco_images(num_train, num_val)
    _remove_stale([out_dir / split for split in COCO_SPLITS], "COCO_*.jpg",
                  {coco_image_name(split, index + 1) for split, index, _ in rows})
    categories = coco_categories()
    ann_id = 0  # annotation ids run on from train into val: unique over both files
    for split in COCO_SPLITS:
        images, annotations = [], []
        for row_split, index, empty in rows:
            if row_split != split:
                continue
            image_id = index + 1
            name = coco_image_name(split, image_id)
            image, instances = make_coco_scene(seed, index, empty)
            _save_jpeg(out_dir / split / f"{name}.jpg", image)
            images.append({"id": image_id, "file_name": f"{name}.jpg", "height": int(image.shape[0]),
                           "width": int(image.shape[1]), "license": 1})
            for instance in instances:
                ann_id += 1
                annotations.append(_coco_annotation(ann_id, image_id, instance))
        document = {"info": {"description": f"WSGCN synthetic demo data set in the MS COCO 2014 layout "
                                            f"(seed {seed})", "version": "1.0", "year": 2014,
                             "contributor": "wsgcn.demo_data"},
                    "licenses": [{"id": 1, "name": "synthetic, no restrictions", "url": ""}],
                    "images": images, "annotations": annotations, "categories": categories}
        # Compact, as COCO's own files are: the polygons make up most of the text.
        save_text(out_dir / "annotations" / f"instances_{split}.json",
                    json.dumps(document, separators=(",", ":")) + "\n")


def _make_voc_dataset(out_dir, num_train, num_val, seed, image_size="demo"):
    """The VOC layout of the module docstring, less demo.json."""
    voc_root = out_dir / "VOC2012"
    names = [demo_image_name(i) for i in range(num_train + num_val)]
    for sub, suffix in (("JPEGImages", ".jpg"), ("SegmentationClassAug", ".png"), ("Annotations", ".xml")):
        _remove_stale([voc_root / sub], f"demo_*{suffix}", set(names))

    label_lines = []
    for index, name in enumerate(names):
        image, gt, boxes = make_scene(seed, index, image_size)
        _save_jpeg(voc_root / "JPEGImages" / f"{name}.jpg", image)
        save_label_png(voc_root / "SegmentationClassAug" / f"{name}.png", gt)
        save_text(voc_root / "Annotations" / f"{name}.xml",
                    _annotation_xml(name, gt.shape[0], gt.shape[1], boxes))
        indices = sorted({CAT_INDEX[cls] for cls, _ in boxes})
        label_lines.append(" ".join([name] + [str(i) for i in indices]))

    save_text(out_dir / "cls_labels.txt", "\n".join(label_lines) + "\n")
    save_text(out_dir / "train.txt", "\n".join(names[:num_train]) + "\n")
    save_text(out_dir / "val.txt", "\n".join(names[num_train:]) + "\n")


def make_demo_dataset(out_dir, num_train=48, num_val=16, seed=0, fmt="voc", image_size="demo"):
    """Write the demo data set in format ``fmt`` (voc or coco) under ``out_dir`` (layouts in the
    module docstring), its images of ``image_size`` (:data:`IMAGE_SIZES`; voc only with the VOC
    format); return ``out_dir``.

    Idempotent: if ``out_dir/demo.json`` records the same parameters, nothing is written.
    Otherwise demo.json is removed first and rewritten last, so an interrupted run is redone.
    """
    out_dir = Path(out_dir)
    for label, value, least in (("num_train", num_train, 1), ("num_val", num_val, 1), ("seed", seed, 0)):
        if int(value) != value or value < least:
            raise ValueError(f"{label} must be an integer >= {least}, got {value!r}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if image_size not in IMAGE_SIZES or (image_size != "demo" and fmt != "voc"):
        raise ValueError(f"image size must be one of {', '.join(IMAGE_SIZES)} (voc with the voc format only), "
                         f"got {image_size!r} with {fmt!r}")
    if is_up_to_date(out_dir, num_train, num_val, seed, fmt, image_size):
        return out_dir

    (out_dir / "demo.json").unlink(missing_ok=True)
    if fmt == "coco":
        _make_coco_dataset(out_dir, int(num_train), int(num_val), int(seed))
    else:
        _make_voc_dataset(out_dir, int(num_train), int(num_val), int(seed), image_size)
    params = demo_params(num_train, num_val, seed, fmt, image_size)
    save_text(out_dir / "demo.json", json.dumps(params, indent=2) + "\n")
    return out_dir


@dataclass(frozen=True)
class DemoDataConfig:
    out: str = field("Data/demo", "output folder (gets VOC2012/ and lists, or COCO's train2014/, val2014/, "
                                  "annotations/; and demo.json)")
    num_train: int = field(48, "number of training images", low=1)
    num_val: int = field(16, "number of validation images", low=1)
    seed: int = field(0, "random seed (same seed, same bytes)", low=0)
    format: str = field("voc", "layout: voc (PASCAL VOC, ground truth and label lists) or coco (MS COCO 2014 "
                               "instance annotations, one more image without objects per split)", choices=FORMATS)
    image_size: str = field("demo", "demo (sides 97..161) or voc (PASCAL VOC's: long side 500, some smaller; "
                                    "voc format only)", choices=IMAGE_SIZES)


def run(cfg):
    sizes = f"{cfg.num_train} train + {cfg.num_val} val images"
    if cfg.format == "coco":
        sizes += " and one without objects in each split"
    if cfg.image_size != "demo":
        sizes += f" of {cfg.image_size} size"
    if is_up_to_date(cfg.out, cfg.num_train, cfg.num_val, cfg.seed, cfg.format, cfg.image_size):
        print(f"{cfg.out}: demo data set up to date ({cfg.format}, {sizes}, seed {cfg.seed})")
        return
    out = make_demo_dataset(cfg.out, cfg.num_train, cfg.num_val, cfg.seed, cfg.format, cfg.image_size)
    what = "COCO-format demo data set" if cfg.format == "coco" else "demo data set"
    print(f"{out}: wrote {what}, {sizes} (seed {cfg.seed})")


def main(argv=None):
    return tool_main(run, DemoDataConfig, argv, __doc__, prog="demo_data")


if __name__ == "__main__":
    raise SystemExit(main())
