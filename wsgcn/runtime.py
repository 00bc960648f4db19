"""Run-time plumbing shared by the steps: device choice, progress bars, per-image seeds, and
the bookkeeping of per-image steps (which images to do, which failed)."""
import contextlib
import hashlib
import os
import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from wsgcn import distributed
from wsgcn.io import atomic_path


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


class ImageFailed:
    """What a per-image function returns instead of raising, when ``map_images`` guards it."""

    def __init__(self, name, reason):
        self.name, self.reason = name, reason


def failure_reason(error):
    """One line for an exception: its message (which names the file), or its type."""
    text = " ".join(str(error).split())
    return text if text else type(error).__name__


class _PerImage(torch.utils.data.Dataset):
    def __init__(self, fn, names, guard):
        self.fn, self.names, self.guard = fn, list(names), guard

    def __len__(self):
        return len(self.names)

    def __getitem__(self, idx):
        if not self.guard:
            return self.fn(self.names[idx])
        try:
            return self.fn(self.names[idx])
        except Exception as error:  # one bad image must not stop the others
            return ImageFailed(self.names[idx], failure_reason(error))


def _as_is(item):
    return item


def map_images(fn, names, num_workers=0, desc="", quiet=False, failures=None):
    """Apply ``fn(name)`` to every image, in ``num_workers`` processes (0: this one), with a
    progress bar; yields the results in list order.  For per-image CPU work such as CRFs, and
    for loading what the main process then computes on the device.

    With ``failures`` (a :class:`Failures`), an image whose ``fn`` raises is recorded there and
    skipped instead of stopping the run."""
    loader = torch.utils.data.DataLoader(_PerImage(fn, names, failures is not None), batch_size=None,
                                         num_workers=num_workers, collate_fn=_as_is)
    for result in progress(loader, desc, quiet, total=len(names)):
        if isinstance(result, ImageFailed):
            failures.add(result.name, result.reason)
        else:
            yield result


def pending_images(names, outputs_of, inputs_of=None, overwrite=False, failures=None):
    """This process's share of ``names`` (see ``distributed.shard``) less the images already
    done, unless ``overwrite``: what a re-run after an interruption still has to do.

    An image is done when all its outputs exist (they are written atomically, so an existing
    file is a complete one) and, as ``make`` decides, none is older than an existing input
    (new weights or a redone earlier step make the outputs stale).  Images listed in the
    ``failures`` file of an earlier run are redone even if an older output exists.

    outputs_of(name), inputs_of(name) -> the paths the step writes / reads for an image.
    """
    def done(name):
        stamps = [_mtime(p) for p in outputs_of(name)]
        if None in stamps or name in failed:
            return False
        inputs = [t for t in (_mtime(p) for p in (inputs_of(name) if inputs_of else ())) if t is not None]
        return not inputs or min(stamps) >= max(inputs)

    mine = distributed.shard(names)
    failed = failures.earlier() if failures is not None else set()
    todo = mine if overwrite else [n for n in mine if not done(n)]
    if len(todo) < len(mine):
        print(f"{len(mine) - len(todo)} of {len(mine)} images already done, skipped (--overwrite True redoes them)",
              file=sys.stderr, flush=True)
    return todo


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


class StepFailed(RuntimeError):
    """Some images of a per-image step failed; the others were done."""


class Failures:
    """The images a per-image step could not do, and why.  Each is logged at once as one line
    naming the image and the reason; :meth:`finish` collects every process's list and writes
    ``<folder>/failures.txt`` (``name<TAB>reason`` lines), or removes a stale one."""

    def __init__(self, step, folder):
        self.step, self.folder, self.items = step, Path(folder), []

    @property
    def path(self):
        return self.folder / "failures.txt"

    def earlier(self):
        """The images listed in the failures.txt of an earlier run (empty set if none)."""
        if not self.path.is_file():
            return set()
        return {line.split("\t", 1)[0] for line in self.path.read_text().splitlines() if line.strip()}

    def add(self, name, reason):
        self.items.append((name, reason))
        print(f"{self.step}: {name}: {reason}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def guard(self, name):
        """Record an exception raised in the block for image ``name`` instead of propagating it."""
        try:
            yield
        except Exception as error:
            self.add(name, failure_reason(error))

    def finish(self):
        """Gather the failures of every process; rank 0 writes the file.  Raises
        :class:`StepFailed` (in every process) if any image failed."""
        items = sorted(item for part in distributed.gather(self.items) for item in part)
        path = self.path
        if distributed.is_main():
            if items:
                self.folder.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    Path(tmp).write_text("".join(f"{name}\t{reason}\n" for name, reason in items))
            elif path.is_file():
                path.unlink()
        if items:
            raise StepFailed(f"{self.step}: {len(items)} image(s) failed, listed in {path}")


def one_line_warnings():
    """Show warnings as one line, ``UserWarning: <message>``, without the source line (scripts only)."""
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"{category.__name__}: {message}\n"
