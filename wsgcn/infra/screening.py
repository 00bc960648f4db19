"""Screening a training list before the first iteration (train_cam, train_irn, DeepLab/train.py).

A training step reads its images in data-loading workers, epoch after epoch; one bad file among
them used to stop the run with a worker's traceback at whatever epoch first drew it, after hours
of training.  So each training step checks every image of its list first, cheaply (image
headers, label tables, label maps), in ``--num_workers`` processes with a progress bar
(:func:`wsgcn.infra.per_image.map_images`).  A bad image is named on one line, listed in the step's
``failures.txt`` and left out; the step trains on the others and ends with exit status 1
(``Failures.finish`` after the weights are saved).  If more than :data:`MAX_BAD_SHARE` of the list
is bad, the list or the data set is probably the wrong one: the step is refused before anything
is trained or written (ValueError: exit status 2).

Under torchrun each process screens its shard of the list (``distributed.shard``) and the bad
names are gathered, so every process trains on the same good images and each failure is
recorded by one process only.
"""
import contextlib
from pathlib import Path

from PIL import Image

from wsgcn.infra import distributed
from wsgcn.infra.io import load_label_png
from wsgcn.infra.per_image import Failures, StepFailed, map_images

MAX_BAD_SHARE = 0.05  # more bad images than this share of the list refuse the step
NAMED_IN_REFUSAL = 3  # how many bad images the refusal's one line names


def image_size_of(path):
    """(H, W) of an image from its header alone (no decoding: a JPEG's pixels are read in
    training); a missing, empty or non-image file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, SyntaxError) as e:  # PIL's error for an empty or foreign file is an OSError
        raise ValueError(f"{path}: unreadable image ({e})") from None
    return height, width


def label_map_of_size(path, image_size):
    """The (H, W) uint8 label map at ``path``, which must have the image's size."""
    label = load_label_png(path)
    if label.shape != tuple(image_size):
        raise ValueError(f"{path}: label map is {label.shape[0]}x{label.shape[1]}, "
                         f"the image is {image_size[0]}x{image_size[1]}")
    return label


def check_image(data, name):
    """The image alone (train_irn's mean-shift images); returns ``name``."""
    image_size_of(data.image_path(name))
    return name


def check_labelled_image(data, name):
    """train_cam's input: the image and its image-level labels (``data.class_labels`` raises for
    an image missing from the label table, a bad XML, or no object class); returns ``name``."""
    image_size_of(data.image_path(name))
    data.class_labels(name)
    return name


def check_ir_label(data, ir_label_dir, name):
    """train_irn's input: the image and its IR label map ``<ir_label_dir>/<name>.png`` of the same
    size (cam_to_ir_label writes it, and leaves it out for an image it failed); returns ``name``."""
    size = image_size_of(data.image_path(name))
    path = ir_label_dir / f"{name}.png"
    if not path.is_file():
        raise FileNotFoundError(f"IR label not found: {path} (written by cam_to_ir_label; see its failures.txt)")
    label_map_of_size(path, size)
    return name


def screen_training_list(names, check, failures, num_workers=0, quiet=False, list_path="", upstream=None,
                         max_bad_share=MAX_BAD_SHARE):
    """The names of ``names`` that pass ``check(name)`` (which raises one of
    ``wsgcn.infra.per_image.INPUT_ERRORS`` for a bad image), in list order.  Each bad image is added to
    ``failures`` (a ``wsgcn.infra.per_image.Failures``: one stderr line now, failures.txt at its
    ``finish``).  More than ``max_bad_share`` of the list bad: ValueError naming the count, the
    share and the first bad images, after failures.txt lists them all; nothing else is written.
    ``list_path``: the list file, for the message.

    ``upstream``: the output folder of the step that made the inputs checked here (train_irn:
    IR_LABEL; DeepLab: the label folder).  The images its failures.txt lists are left out
    unchecked and recorded as failed here too, but do not count towards the share: they are an
    earlier step's failures, already reported, not a sign of a wrong list or data set."""
    if not names:
        return []
    before = len(failures.items)
    earlier = Failures("", upstream).earlier() if upstream is not None else set()
    mine = distributed.shard(names)
    for name in (n for n in mine if n in earlier):
        failures.add(name, f"failed in an earlier step (listed in {Path(upstream) / 'failures.txt'})")
    # this process's shard, then every process's failures: all end with the same good list
    todo = [n for n in mine if n not in earlier]
    list(map_images(check, todo, num_workers, f"{failures.step}: screening", quiet, failures))
    found = [(name, reason) for name, reason, _ in failures.items[before:]]  # Failures.add's records
    bad = dict(item for part in distributed.gather(found) for item in part)
    counted = [name for name in bad if name not in earlier]
    if len(counted) > max_bad_share * len(names):
        with contextlib.suppress(StepFailed):
            failures.finish()  # the whole list in failures.txt; the one line below names a few
        first = [f"{name} ({bad[name]})" for name in names if name in counted][:NAMED_IN_REFUSAL]
        more = f" and {len(counted) - len(first)} more" if len(counted) > len(first) else ""
        raise ValueError(f"{failures.step}: {len(counted)} of {len(names)} images "
                         f"({100 * len(counted) / len(names):.1f} %) of {list_path} are unusable, more than "
                         f"{100 * max_bad_share:.0f} %: {', '.join(first)}{more} (all in {failures.path}) — fix them "
                         f"or remove them from the list")
    return [name for name in names if name not in bad]


def screen_another_list(names, screened, good, check, failures, num_workers=0, quiet=False, list_path="",
                        upstream=None):
    """The good names of a second list the step reads (train_cam's validation list, train_irn's
    mean-shift images), in its order.  A name of ``screened`` (the training list, already
    screened) is good if it is in ``good``; the others are screened here, so that no image is
    recorded twice.  Bad images are only left out: this list is not what the step trains on, so
    no share of bad images refuses the step."""
    screened, good = set(screened), set(good)
    good |= set(screen_training_list([n for n in names if n not in screened], check, failures, num_workers, quiet,
                                     list_path, upstream, max_bad_share=1.0))
    return [name for name in names if name in good]
