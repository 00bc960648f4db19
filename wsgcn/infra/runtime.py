"""Run-time plumbing shared by every step: device choice, progress bars, per-image seeds,
warnings, and the ends of processes (SIGTERM, data-loading workers whose parent died).  The
bookkeeping of per-image steps is in :mod:`wsgcn.infra.per_image`."""
import ctypes
import functools
import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings

import threadpoolctl
import torch
from tqdm import tqdm

from wsgcn.infra import distributed


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


LOG_INTERVAL_S = 60  # a progress line in a log file at least this often


class _LogLines:
    """tqdm's output in a log file: each redraw (``\\r`` + status + padding) as a line of its
    own, a status equal to the previous one left out (tqdm redraws the last one on closing)."""

    def __init__(self, stream):
        self.stream, self.last = stream, None

    def write(self, text):
        line = text.replace("\r", "").rstrip()
        if line and line != self.last:
            self.stream.write(line + "\n")
            self.last = line

    def flush(self):
        self.stream.flush()


class _LogBar(tqdm):
    """A tqdm bar for a log file: a line at least every ``LOG_INTERVAL_S`` seconds, also while
    one iteration takes longer (a training step of several minutes), from a daemon thread."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, file=_LogLines(sys.stderr), mininterval=LOG_INTERVAL_S, ncols=0, **kwargs)
        self._stopped, self._beat_t = threading.Event(), 0.0
        if not self.disable:
            threading.Thread(target=self._heartbeat, daemon=True).start()

    def _heartbeat(self):
        # tqdm's own timestamps are left alone: its iterator keeps copies of them
        while not self._stopped.wait(LOG_INTERVAL_S / 4):
            if time.time() - max(self.last_print_t, self._beat_t) >= LOG_INTERVAL_S:
                self._beat_t = time.time()
                self.refresh()

    def close(self):
        if hasattr(self, "_stopped"):
            self._stopped.set()
        super().close()


def progress(iterable, desc, quiet=False, total=None, unit="img", initial=0):
    """A tqdm bar with count, rate and ETA; silent with ``quiet``.  On a terminal it redraws
    itself; otherwise (a log file, a pipe) it prints a line at least every ``LOG_INTERVAL_S``
    seconds and one at the end."""
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, unit=unit, disable=quiet, initial=initial, mininterval=0.1,
                    file=sys.stderr, dynamic_ncols=True, leave=True)
    return _LogBar(iterable, desc=desc, total=total, unit=unit, disable=quiet, initial=initial, leave=True)


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


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM (see :func:`terminate_on_sigterm`).  A BaseException,
    like KeyboardInterrupt, so that the steps' ``except Exception`` blocks let it through."""
    exit_status = 128 + signal.SIGTERM  # 143, what a shell reports for a process ended by TERM


IMPORT_RETRY_S = 0.05  # how soon a TERM that came during an import is handled again


def _importing(frame):
    """Whether ``frame`` runs inside an import (a frame of importlib's bootstrap below it)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _terminate_again(main_thread):
    if signal.getsignal(signal.SIGTERM) is _raise_terminated:  # not once the clean-up has begun
        signal.pthread_kill(main_thread, signal.SIGTERM)


def _raise_terminated(signum, frame):
    if _importing(frame):
        # Not in the middle of an import (torch imports torch._dynamo at the first optimiser
        # step): with a module cut in half, GCN/train.py printed "terminated" and then hung at
        # exit, and a bare except in the module would swallow the exception.  The signal comes
        # again, to the main thread, every IMPORT_RETRY_S until the import is over.
        timer = threading.Timer(IMPORT_RETRY_S, _terminate_again, (threading.main_thread().ident,))
        timer.daemon = True
        timer.start()
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second TERM, during the clean-up, ends the process at once
    raise Terminated("terminated by SIGTERM")


def _default_sigterm():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


_fork_hook_registered = False


def terminate_on_sigterm():
    """Make SIGTERM end this process as an exception in the main thread would: ``atomic_path``
    removes the file being written, DataLoader iterators shut their workers down, and the
    script's main turns :class:`Terminated` into exit status 143.

    Processes forked from here (data-loading workers, pools) keep the default: TERM ends them at
    once.  A handler raising there would go through multiprocessing's bootstrap (a traceback per
    worker) and could then wait forever on a result the parent no longer reads; a file such a
    worker leaves half-written is a ``.<name>.part.*`` temporary, which the step removes when it
    next starts.  Called from another thread than the main one, it does nothing (only the main
    thread can set signal handlers)."""
    global _fork_hook_registered
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_default_sigterm)
        _fork_hook_registered = True


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _kill_me_when_parent_dies():
    """Linux: have the kernel send SIGKILL to this process when the thread that forked it ends."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this C library: the watchdog still covers
        pass


def _watch_parent(parent_pid, interval):
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os._exit(1)  # not sys.exit: the exit handlers would wait on a pipe nobody reads any more


def worker_init(parent_pid, worker_id=None, interval=1.0):
    """Make this worker process end within about ``interval`` seconds when its parent ends, however
    it ended (a worker left behind blocks forever writing a result into a pipe nobody reads).

    parent_pid: the pid of the process that made the loader, recorded there (see
    :func:`worker_init_fn`); None: the parent this worker has now (a fork server, which ends with
    the process that made the loader).  worker_id is what DataLoader passes, unused.

    Two guards: on Linux the kernel's parent-death signal, which comes at once (it follows the
    *thread* that started the worker, so a loader must be iterated by a thread that outlives its
    workers, as the main thread does here); and a daemon thread that polls the parent pid, for
    systems without that signal.  A parent that died before the signal was set is caught by
    comparing the parent pid with the recorded one.

    The worker's BLAS (numpy's and scipy's OpenBLAS) runs on one thread, as DataLoader already
    makes torch do: the workers run beside each other and the main process, and a worker's
    BLAS threads on every core slowed the GCN stage 1.5x on 2 cores (its eigensolver runs there).
    """
    threadpoolctl.threadpool_limits(1, user_api="blas")
    _kill_me_when_parent_dies()
    expected = os.getppid() if parent_pid is None else parent_pid
    if os.getppid() != expected:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(expected, interval), name="parent-watchdog", daemon=True).start()


def worker_init_fn():
    """``DataLoader(..., worker_init_fn=worker_init_fn())``: workers that end with this process.
    A partial of a module-level function, so that it pickles under the spawn start method."""
    # Under the forkserver start method (Python 3.14's default on Linux) the workers' parent is
    # the fork server, not this process: they watch it instead, and it ends when this process does.
    parent_pid = None if multiprocessing.get_start_method() == "forkserver" else os.getpid()
    return functools.partial(worker_init, parent_pid)
