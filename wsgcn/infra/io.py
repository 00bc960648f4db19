"""File formats shared by every step: palette PNG label maps and score archives, and what
a step does with its output folders.

Every writer goes through :func:`atomic_path`, so an interrupted run never leaves a
half-written file behind: the data go to a temporary name in the same folder and are
renamed into place only once complete.  A full disk or a folder that cannot be written is
not a fault of the image being written: it is an :class:`EnvironmentFault`, which stops the
run with one line naming the path.  :func:`prepare_outputs` checks a step's output folders
before any work and removes the temporaries a killed run left there.
"""
import contextlib
import errno
import glob
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from wsgcn.infra import distributed


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


class EnvironmentFault(Exception):
    """The machine, not an input, is at fault: a full disk, a folder that cannot be written, a
    path through a file.  Not an image failure (every later image would fail the same way): the
    run stops at once with this one line naming the path (exit status 2).  Deliberately not an
    OSError, so that the per-image steps' input-error handling never catches it."""


# errno -> what to tell the user, for the OSErrors that come from the machine
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device: free some, or write elsewhere (--work_dir)",
    errno.EDQUOT: "disk quota exceeded: free some space, or write elsewhere (--work_dir)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def environment_fault(error, path=None):
    """The :class:`EnvironmentFault` an error stands for (naming ``path``, or the error's own
    file): an OSError of :data:`ENVIRONMENT_ERRNOS`, or an error raised while handling one;
    None otherwise."""
    if isinstance(error, EnvironmentFault):
        return error
    seen = []
    while error is not None and error not in seen:  # torch.save re-raises a full disk as a RuntimeError
        if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS:
            where = path if path is not None else (error.filename or "?")
            return EnvironmentFault(f"{where}: {ENVIRONMENT_ERRNOS[error.errno]}")
        seen.append(error)
        error = error.__cause__ or error.__context__
    return None


@contextlib.contextmanager
def environment_faults(path=None):
    """Turn the OSErrors of :data:`ENVIRONMENT_ERRNOS` raised in the block into
    :class:`EnvironmentFault` naming ``path`` (default: the error's file)."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        fault = environment_fault(error, path)
        if fault is None:
            raise
        raise fault from None


TEMPORARY_MARK = ".part"  # in every temporary name: .<stem>.<random>.part<suffix>


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the file's suffix, so writers that look at it (PIL, numpy) pick the
    right format.  On an exception the temporary file is removed and ``path`` is left untouched;
    a full disk or an unwritable folder becomes an :class:`EnvironmentFault` naming ``path``.
    """
    path = Path(path)
    with environment_faults(path):
        make_folder(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=TEMPORARY_MARK + path.suffix, dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it an ordinary file's mode
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise


def make_folder(folder):
    """mkdir -p, with a file in the way said as such (Python says 'File exists')."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise EnvironmentFault(f"{folder}: is a file, not a folder") from None


def save_torch(path, obj):
    """``torch.save`` to ``path`` atomically.  Through a Python file object: saving to a path,
    torch reports a full disk as 'unexpected pos 576 vs 534'; through a file, as the OSError
    it is."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def temporaries(folder, stem=None):
    """The temporary files :func:`atomic_path` left in ``folder``: of every file, or of the files
    named ``stem.*``."""
    name = "*" if stem is None else glob.escape(stem)
    return [Path(p) for p in glob.glob(os.path.join(glob.escape(str(folder)), f".{name}.*{TEMPORARY_MARK}*"))]


def prepare_outputs(folders=(), files=()):
    """Before a step does any work: make its output ``folders`` and the folders of its output
    ``files``, check that each can be written (a small probe file is written, flushed and
    removed, so a full disk shows here and not after hours of work), and remove the temporary
    files a killed earlier run left: every temporary in ``folders`` (a step's own output
    folders), only those of ``files`` in theirs (e.g. sess/, shared by several steps).
    Raises :class:`EnvironmentFault` naming the first folder that fails."""
    folders = [Path(f) for f in folders]
    files = [Path(f) for f in files]
    for folder in dict.fromkeys(folders + [f.parent for f in files]):
        with environment_faults(folder):
            make_folder(folder)
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
            try:
                os.write(fd, b"\0" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.remove(probe)
    debris = []
    if distributed.is_main():  # the others wait: none of them may have begun a temporary yet
        debris = [t for folder in folders for t in temporaries(folder)]
        debris += [t for f in files for t in temporaries(f.parent, f.stem)]
        for leftover in debris:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    distributed.barrier()
    return debris


def save_text(path, text):
    """Write ``text`` to ``path`` atomically (a list file, a table, a JSON record)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


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
    """Read an ``.npz`` archive without pickle into a dict of arrays, checking ``required`` keys.
    A file that is not such an archive is a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"archive not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # damaged, truncated, or pickled
        # numpy reads what is neither a zip nor a .npy as a pickle, and advises loading it unsafely
        reason = "pickled data, refused: unpickling runs code from the file" if "pickle" in str(e) else e
        raise ValueError(f"{path}: unreadable archive ({' '.join(str(reason).split())})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single array (.npy format), not an archive of named arrays")
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{path}: archive lacks {missing}, has {sorted(arrays)}")
    return arrays
