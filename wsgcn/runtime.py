"""Run-time plumbing shared by every step: device choice, progress bars, per-image seeds and
warnings.  The bookkeeping of per-image steps is in :mod:`wsgcn.per_image`."""
import hashlib
import os
import sys
import warnings

import torch
from tqdm import tqdm

from wsgcn import distributed


def resolve_device(name=""):
    """``""``/``"auto"``: CUDA when available, else the CPU; otherwise the named device.
    Under torchrun, a bare ``cuda`` means this process's GPU, ``cuda:LOCAL_RANK``."""
    if name in ("", "auto", None):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", distributed.local_rank() if distributed.world_size() > 1 else 0)
    return device


def progress(iterable, desc, quiet=False, total=None, unit="img", initial=0):
    """A tqdm bar with rate and ETA; silent with ``quiet``; under CI (no terminal, or CI set)
    it prints one line at the end instead of redrawing."""
    ci = bool(os.environ.get("CI")) or not sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=quiet, initial=initial,
                mininterval=3600 if ci else 0.1, file=sys.stderr, dynamic_ncols=True, leave=True)


def image_seed(seed, name):
    """A 63-bit seed from a global seed and an image name: the same image gets the same seed
    whatever list, chunk or shard it is processed in."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def one_line_warnings():
    """Show warnings as one line, ``UserWarning: <message>``, without the source line (scripts only)."""
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"{category.__name__}: {message}\n"
