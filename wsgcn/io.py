"""File formats shared by every step: palette PNG label maps and score archives.

Every writer goes through :func:`atomic_path`, so an interrupted run never leaves a
half-written file behind: the data go to a temporary name in the same folder and are
renamed into place only once complete.
"""
import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def voc_colormap(n=256):
    """The standard PASCAL VOC palette: (n, 3) uint8, row i = colour of class i (255 = void, cream)."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


VOC_PALETTE = voc_colormap().flatten().tolist()


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once: os.umask can only be read by setting it


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the file's suffix, so writers that look at it (PIL, numpy) pick the
    right format.  On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it an ordinary file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def save_label_png(path, label_map):
    """Write a label map (H, W) of class indices 0..255 as a palette PNG with the VOC colours."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f"{path}: a label map must be 2-D (H, W), got shape {label_map.shape}")
    if label_map.size and (label_map.min() < 0 or label_map.max() > 255):
        raise ValueError(f"{path}: label values must lie in 0..255, got {label_map.min()}..{label_map.max()}")
    img = Image.fromarray(label_map.astype(np.uint8), mode="P")
    img.putpalette(VOC_PALETTE)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def load_label_png(path):
    """Read a label map written as a palette (or grey-level) PNG: (H, W) uint8 class indices."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label map not found: {path}")
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise ValueError(f"{path}: a label map must be a palette or grey-level PNG, got mode {img.mode}")
            return np.array(img, dtype=np.uint8)
    except (OSError, SyntaxError) as e:
        raise ValueError(f"{path}: unreadable label map ({e})") from None


def save_npz(path, **arrays):
    """Write arrays into an uncompressed ``.npz`` archive (readable without pickle), atomically."""
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"{path}: array {key!r} has dtype object, which would need pickle to read")
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def load_npz(path, required=()):
    """Read an ``.npz`` archive without pickle into a dict of arrays, checking ``required`` keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"archive not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as e:
        raise ValueError(f"{path}: refused to load, the archive holds pickled objects ({e})") from None
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: unreadable archive ({e})") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{path}: archive lacks {missing}, has {sorted(arrays)}")
    return arrays
