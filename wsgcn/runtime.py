"""Run-time plumbing shared by the steps: device choice, progress bars, per-image seeds."""
import hashlib
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
