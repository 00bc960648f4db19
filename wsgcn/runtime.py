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

    Under torchrun each process computes on its local GPU, ``cuda:LOCAL_RANK``: ``cuda`` means
    that, and an explicit index is refused (every rank would take the same GPU; choose GPUs
    with ``CUDA_VISIBLE_DEVICES``).  A GPU index beyond the visible ones is an error naming both.
    """
    if name in ("", "auto", None):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    under_torchrun = distributed.world_size() > 1
    if under_torchrun and device.index is not None:
        raise ValueError(f"--device {name}: under torchrun each process uses its local GPU (LOCAL_RANK); pass "
                         f"--device cuda (DEVICE=cuda) and choose the GPUs with CUDA_VISIBLE_DEVICES")
    index = distributed.local_rank() if under_torchrun else (device.index or 0)
    count = torch.cuda.device_count()
    if index >= count:
        what = f"LOCAL_RANK {index}" if under_torchrun else f"--device {name}"
        raise ValueError(f"{what}: this machine has {count} visible GPU(s) (cuda:0..cuda:{count - 1}); "
                         f"run at most {count} process(es) per machine (NPROC)")
    return torch.device("cuda", index)


def progress(iterable, desc, quiet=False, total=None, unit="img", initial=0):
    """A tqdm bar with rate and ETA; silent with ``quiet``; under CI (no terminal, or CI set)
    it prints one line at the end instead of redrawing."""
    ci = bool(os.environ.get("CI")) or not sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=quiet, initial=initial,
                mininterval=3600 if ci else 0.1, file=sys.stderr, dynamic_ncols=True, leave=True)


def default_workers():
    """Data-loading workers per process: half the cores, shared among the processes torchrun
    starts on this machine (``LOCAL_WORLD_SIZE``), at least 1."""
    per_machine = max(1, (os.cpu_count() or 2) // 2)
    return max(1, per_machine // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def image_seed(seed, name):
    """A 63-bit seed from a global seed and an image name: the same image gets the same seed
    whatever list, chunk or shard it is processed in."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def one_line_warnings():
    """Show warnings as one line, ``UserWarning: <message>``, without the source line (scripts only)."""
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"{category.__name__}: {message}\n"
