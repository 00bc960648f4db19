"""The machinery of per-image steps (make_cam, cam_to_ir_label, make_sem_seg_labels, the GCN
scripts): which images are still to do (:func:`pending_images`), mapping a function over them in
data-loading workers (:func:`map_images`), and the images that failed (:class:`Failures`).

A bad input (an unreadable or inconsistent file, a wrong shape or value, an image too large for
the memory: :func:`is_input_error`) fails its image: one line in ``failures.txt`` and the log, its
traceback in ``failures.log``, and the other images go on.  A fault of the machine (a full disk, an
unwritable folder: :class:`wsgcn.infra.io.EnvironmentFault`) stops the run at once with one line, from a
worker as from the main process.  Any other exception (TypeError, AttributeError, torch's
RuntimeError: a bug, not a bad input) stops the run with its traceback.
"""
import contextlib
import os
import pickle
import sys
import traceback
import zipfile
from pathlib import Path

import torch
from PIL import Image

from wsgcn.infra import distributed
from wsgcn.infra.io import EnvironmentFault, environment_fault, save_text
from wsgcn.infra.runtime import progress, worker_init_fn

# What a bad input raises: a file that cannot be read or decoded (OSError, which includes PIL's
# UnidentifiedImageError; EOFError, zip and pickle errors, PIL's refusal of a decompression bomb),
# wrong contents (ValueError, KeyError: each reader checks the shapes and values of what it reads
# against the image and names the file), and an image too large for the memory (torch's
# OutOfMemoryError, numpy's MemoryError).  Torch's other RuntimeErrors (a shape mismatch, a
# device-side assert) are bugs: a bad file that could cause one is refused by its reader first.
INPUT_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError,
                Image.DecompressionBombError, torch.cuda.OutOfMemoryError, MemoryError)

# How torch's CPU allocator says it cannot allocate: a plain RuntimeError, where CUDA raises
# OutOfMemoryError ("[enforce fail at alloc_cpu.cpp:...] DefaultCPUAllocator: can't allocate memory").
CPU_OUT_OF_MEMORY = "DefaultCPUAllocator: can't allocate memory"


def is_out_of_memory(error):
    """Whether ``error`` says the memory (of the GPU, or torch's or numpy's on the CPU) ran out."""
    return (isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError))
            or (isinstance(error, RuntimeError) and CPU_OUT_OF_MEMORY in str(error)))


def is_input_error(error):
    """Whether ``error`` fails its image alone (one of ``INPUT_ERRORS``, or torch out of CPU
    memory) rather than stopping the run."""
    return isinstance(error, INPUT_ERRORS) or is_out_of_memory(error)


class ImageFailed:
    """What a per-image function returns instead of raising, when ``map_images`` guards it
    (picklable, to come back from a data-loading worker)."""

    def __init__(self, name, reason, details=""):
        self.name, self.reason, self.details = name, reason, details


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
        try:
            return self.fn(self.names[idx])
        except Exception as error:
            fault = environment_fault(error)
            if fault is not None:  # back to the main process as one line (a worker's traceback is long)
                return _Fault(str(fault))
            if not (self.guard and is_input_error(error)):
                raise
            # one bad image must not stop the others
            return ImageFailed(self.names[idx], failure_reason(error), traceback.format_exc())


class _Fault:
    """An :class:`EnvironmentFault` on its way back from a worker (its message)."""

    def __init__(self, message):
        self.message = message


def _as_is(item):
    return item


def map_images(fn, names, num_workers=0, desc="", quiet=False, failures=None):
    """Apply ``fn(name)`` to every image, in ``num_workers`` processes (0: this one), with a
    progress bar; yields the results in list order.  For per-image CPU work such as CRFs, and
    for loading what the main process then computes on the device.

    With ``failures`` (a :class:`Failures`), an image whose ``fn`` raises is recorded there and
    skipped instead of stopping the run."""
    loader = torch.utils.data.DataLoader(_PerImage(fn, names, failures is not None), batch_size=None,
                                         num_workers=num_workers, collate_fn=_as_is, worker_init_fn=worker_init_fn())
    for result in progress(loader, desc, quiet, total=len(names)):
        if isinstance(result, _Fault):
            raise EnvironmentFault(result.message)
        if isinstance(result, ImageFailed):
            failures.add(result.name, result.reason, result.details)
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
    ``<folder>/failures.txt`` (``name<TAB>reason`` lines) and ``<folder>/failures.log`` (each
    image's traceback), or removes stale ones."""

    def __init__(self, step, folder):
        self.step, self.folder, self.items = step, Path(folder), []

    @property
    def path(self):
        return self.folder / "failures.txt"

    @property
    def log_path(self):
        return self.folder / "failures.log"

    def earlier(self):
        """The images listed in the failures.txt of an earlier run (empty set if none)."""
        if not self.path.is_file():
            return set()
        return {line.split("\t", 1)[0] for line in self.path.read_text().splitlines() if line.strip()}

    def names(self):
        """The images recorded as failed so far (in this process)."""
        return {name for name, _, _ in self.items}

    def add(self, name, reason, details=""):
        """Record image ``name`` as failed: ``reason`` one line, ``details`` its traceback."""
        self.items.append((name, reason, details))
        print(f"{self.step}: {name}: {reason}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def guard(self, name):
        """Record a bad input's exception (:func:`is_input_error`) raised in the block for image
        ``name`` instead of propagating it; any other exception propagates."""
        try:
            yield
        except Exception as error:
            fault = environment_fault(error)
            if fault is not None:  # the machine's fault, not the image's: stop the run
                raise fault from None
            if not is_input_error(error):
                raise
            self.add(name, failure_reason(error), traceback.format_exc())

    def finish(self):
        """Gather the failures of every process; rank 0 writes the file.  Raises
        :class:`StepFailed` (in every process) if any image failed."""
        items = sorted(item for part in distributed.gather(self.items) for item in part)
        if distributed.is_main():
            if items:
                self.folder.mkdir(parents=True, exist_ok=True)
                save_text(self.path, "".join(f"{name}\t{reason}\n" for name, reason, _ in items))
                save_text(self.log_path, "".join(f"== {name}: {reason}\n{details}\n"
                                                 for name, reason, details in items))
            else:
                for path in (self.path, self.log_path):
                    if path.is_file():
                        path.unlink()
        if items:
            raise StepFailed(f"{self.step}: {len(items)} image(s) failed, listed in {self.path} "
                             f"(tracebacks in {self.log_path.name})")
