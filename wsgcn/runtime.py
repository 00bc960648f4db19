"""Run-time plumbing shared by the steps: device choice, progress bars, per-image seeds."""
import hashlib
import warnings
import os
import sys

import torch
from tqdm import tqdm


def resolve_device(name=""):
    """``""``/``"auto"``: CUDA when available, else the CPU; otherwise the named device."""
    if name in ("", "auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: CUDA is not available on this machine")
    return device


def progress(iterable, desc, quiet=False, total=None, unit="img"):
    """A tqdm bar with rate and ETA; silent with ``quiet``; under CI (no terminal, or CI set)
    it prints one line at the end instead of redrawing."""
    ci = bool(os.environ.get("CI")) or not sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=quiet,
                mininterval=3600 if ci else 0.1, file=sys.stderr, dynamic_ncols=True, leave=True)


def image_seed(seed, name):
    """A 63-bit seed from a global seed and an image name: the same image gets the same seed
    whatever list, chunk or shard it is processed in."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class _PerImage(torch.utils.data.Dataset):
    def __init__(self, fn, names):
        self.fn, self.names = fn, list(names)

    def __len__(self):
        return len(self.names)

    def __getitem__(self, idx):
        return self.fn(self.names[idx])


def _as_is(item):
    return item


def map_images(fn, names, num_workers=0, desc="", quiet=False):
    """Apply ``fn(name)`` to every image, in ``num_workers`` processes (0: this one), with a
    progress bar; yields the results in list order.  For per-image CPU work such as CRFs."""
    loader = torch.utils.data.DataLoader(_PerImage(fn, names), batch_size=None, num_workers=num_workers,
                                         collate_fn=_as_is)
    yield from progress(loader, desc, quiet, total=len(names))


def one_line_warnings():
    """Show warnings as one line, ``UserWarning: <message>``, without the source line (scripts only)."""
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"{category.__name__}: {message}\n"
