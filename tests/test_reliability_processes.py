"""Processes end with their run (issue 18, case 5): a data-loading worker whose parent died,
however it died, ends within seconds instead of waiting forever to write its result into a pipe
nobody reads; SIGTERM ends a script as an exception would, with exit status 143, one line, its
workers shut down and no temporary file left.

Each case runs the parent as a separate Python process and watches its workers through /proc.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from GCN import make_dataset
from wsgcn.infra import runtime

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches processes through /proc")

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
TERM_TIMEOUT_S = 120  # how long a terminated run may take to end


# ---------------------------------------------------------------- helpers


def stat_fields(pid):
    """The fields of /proc/<pid>/stat after the command name: [state, ppid, ...]; None if no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_gone(pid):
    """True once the process has ended: no entry, or a zombie waiting for its new parent to reap it."""
    fields = stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def cpu_seconds(pid):
    """The CPU time a process has used so far (user + system)."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def children(pid):
    """The live children of a process."""
    found = []
    for entry in Path("/proc").iterdir():
        fields = stat_fields(entry.name) if entry.name.isdigit() else None
        if fields is not None and int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def wait_until(condition, timeout):
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def spawn(tmp_path):
    """start(argv) -> Popen of a parent process, its output in ``proc.out``/``proc.err`` (files:
    a worker left alive would hold pipes open); at the end it and every worker it had are killed."""
    started, workers = [], []

    def start(argv):
        out, err = tmp_path / f"stdout{len(started)}", tmp_path / f"stderr{len(started)}"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=stdout, stderr=stderr, text=True)
        proc.out, proc.err = out, err
        started.append(proc)
        return proc

    start.workers = workers
    yield start
    for pid in [proc.pid for proc in started] + workers:
        if not is_gone(pid):
            os.kill(pid, signal.SIGKILL)  # a test that failed must not leave 64 MB orphans behind
    for proc in started:
        proc.wait()


def workers_of(start, proc, ready):
    """The workers of ``proc`` once ``ready()`` holds (the parent process is then taken to have started them)."""
    assert wait_until(lambda: ready() or proc.poll() is not None, 120), "the parent did not start in time"
    assert proc.poll() is None, f"the parent ended early: {proc.err.read_text()}"
    workers = children(proc.pid)
    start.workers.extend(workers)
    assert workers, "the parent has no worker process"
    return workers


def kill_and_watch(proc, workers):
    """SIGKILL the parent; True if all its workers end within 10 s (at once when it works)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return wait_until(lambda: all(is_gone(pid) for pid in workers), 10)


# A parent that takes one result and then sleeps: the worker makes the next results meanwhile, 64 MB
# each, more than a pipe holds, so it is blocked writing one into the pipe when the parent dies.
MAP_IMAGES_PARENT = """
import sys, time
import numpy as np
from pathlib import Path
from wsgcn.infra.per_image import map_images

for _ in map_images(lambda name: np.ones(2 ** 24, np.float32), ["a", "b", "c", "d"], num_workers=1, quiet=True):
    Path(sys.argv[1]).touch()
    time.sleep(600)
"""

TRAIN_LOADER_PARENT = """
import sys, time
import torch
from pathlib import Path
from wsgcn.infra.training import train_loader

class Big(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        return {"payload": bytes(2 ** 26)}  # bytes are collated as they are: 64 MB through the pipe

for _ in train_loader(Big(), batch_size=1, num_workers=1, seed=0):
    Path(sys.argv[1]).touch()
    time.sleep(600)
"""


# ---------------------------------------------------------------- workers whose parent was killed


def test_map_images_workers_end_when_their_parent_is_killed(spawn, tmp_path):
    ready = tmp_path / "ready"
    proc = spawn([sys.executable, "-c", MAP_IMAGES_PARENT, str(ready)])
    workers = workers_of(spawn, proc, ready.exists)
    assert kill_and_watch(proc, workers), f"worker(s) {workers} still alive 10 s after their parent was killed"


def test_train_loader_workers_end_when_their_parent_is_killed(spawn, tmp_path):
    ready = tmp_path / "ready"
    proc = spawn([sys.executable, "-c", TRAIN_LOADER_PARENT, str(ready)])
    workers = workers_of(spawn, proc, ready.exists)
    assert kill_and_watch(proc, workers), f"worker(s) {workers} still alive 10 s after their parent was killed"


def test_a_worker_whose_parent_died_before_it_started_watching_ends_at_once():
    """The race before the parent-death signal is set: the parent recorded is not the parent any more."""
    code = f"from wsgcn.infra.runtime import worker_init; worker_init({os.getppid()}, 0); import time; time.sleep(60)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (1, "")


# The watchdog alone, as where the parent-death signal does not exist: a parent forks a worker,
# which clears the signal after worker_init set it, and the parent exits.
WATCHDOG_PARENT = """
import ctypes, os, sys, time
from wsgcn.infra.runtime import PR_SET_PDEATHSIG, worker_init

parent, (ready_r, ready_w) = os.getpid(), os.pipe()
worker = os.fork()
if worker == 0:
    worker_init(parent, 0, interval=0.2)
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0)
    os.write(ready_w, b"x")
    time.sleep(60)
    os._exit(0)
os.read(ready_r, 1)
print(worker, flush=True)
"""


def test_the_watchdog_ends_a_worker_when_the_parent_death_signal_does_not_come(spawn):
    proc = spawn([sys.executable, "-c", WATCHDOG_PARENT])
    assert proc.wait(timeout=60) == 0, proc.err.read_text()
    worker = int(proc.out.read_text())
    spawn.workers.append(worker)
    assert wait_until(lambda: is_gone(worker), 10), "the worker outlived its parent by 10 s"


# ---------------------------------------------------------------- SIGTERM


TERM_DURING_A_WRITE = """
import os, signal, sys, time
from pathlib import Path
from wsgcn.infra.io import atomic_path
from wsgcn.infra.runtime import Terminated, terminate_on_sigterm

terminate_on_sigterm()
try:
    with atomic_path(Path(sys.argv[1]) / "out.npz") as tmp:
        tmp.write_text("half of it")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
except Terminated:
    sys.exit(Terminated.exit_status)
"""


def test_sigterm_during_a_write_removes_the_temporary_file(tmp_path):
    out = subprocess.run([sys.executable, "-c", TERM_DURING_A_WRITE, str(tmp_path)], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (143, "")
    assert not list(tmp_path.iterdir())


TERM_DURING_AN_IMPORT = """
import sys, time
from wsgcn.infra.runtime import Terminated, terminate_on_sigterm

sys.path.insert(0, sys.argv[1])
terminate_on_sigterm()
try:
    import slow_module  # sends itself a TERM half way through
    time.sleep(60)
except Terminated:
    print(sys.modules["slow_module"].DONE, flush=True)
    sys.exit(Terminated.exit_status)
"""

SLOW_MODULE = """
import os, signal, time
os.kill(os.getpid(), signal.SIGTERM)
for _ in range(20):  # the rest of a slow import, bytecode the handler could interrupt
    time.sleep(0.01)
try:  # a module probing an optional dependency the way some do
    time.sleep(0.2)
except:  # noqa: E722
    pass
DONE = "imported whole"
"""


def test_sigterm_during_an_import_waits_for_its_end(tmp_path):
    """A TERM that arrives while a module is being imported (torch imports torch._dynamo at the
    first optimiser step) ends the run once the import is over, also while the module runs a
    bare except.  Raised at once, it cut the import in half (no module, a KeyError here)."""
    (tmp_path / "slow_module.py").write_text(SLOW_MODULE)
    out = subprocess.run([sys.executable, "-c", TERM_DURING_AN_IMPORT, str(tmp_path)], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (143, "imported whole\n", "")


# ---------------------------------------------------------------- a GCN run, terminated or killed


@pytest.fixture
def gcn_work(irn_run, demo_root, tmp_path):
    """A private work dir with the GCN stage's inputs (made by make_dataset), and GCN/train.py's
    argv there: one worker, and far more epochs than a test waits for."""
    _, work, _ = irn_run
    shutil.copytree(work / "IRN4GCN", tmp_path / "work" / "IRN4GCN")
    work = tmp_path / "work"
    argv = ["--work_dir", str(work), "--voc12_root", str(demo_root / "VOC2012"),
            "--train_list", str(demo_root / "val.txt"), "--cls_labels", str(demo_root / "cls_labels.txt"),
            "--quiet", "True", "--device", "cpu"]
    make_dataset.main([*argv, "--num_workers", "0"])
    return work, [sys.executable, "GCN/train.py", *argv, "--num_workers", "1", "--max_epoch", "1000000",
                  "--batch_images", "1"]


def test_sigterm_ends_a_gcn_run_cleanly(spawn, gcn_work):
    work, argv = gcn_work
    proc = spawn(argv)
    workers = workers_of(spawn, proc, lambda: children(proc.pid))
    started = cpu_seconds(proc.pid)
    assert wait_until(lambda: cpu_seconds(proc.pid) > started + 0.5, 60), "the GCN did not start training"
    proc.send_signal(signal.SIGTERM)
    # 1.2-2.8 s on a quiet 2-core machine (about half of it the interpreter's exit), but over
    # 30 s when other processes' threads compete for the cores: a hang never ends
    assert proc.wait(timeout=TERM_TIMEOUT_S) == runtime.Terminated.exit_status == 143
    stderr = proc.err.read_text()
    assert [line for line in stderr.splitlines() if "terminated" in line] == ["train.py: terminated"]
    assert "Traceback" not in stderr
    assert not list(work.rglob(".*.part*"))
    assert wait_until(lambda: all(is_gone(pid) for pid in workers), 10), f"worker(s) {workers} outlived the run"


def test_sigkill_of_a_gcn_run_ends_its_worker(spawn, gcn_work):
    _, argv = gcn_work
    proc = spawn(argv)
    workers = workers_of(spawn, proc, lambda: children(proc.pid))
    assert kill_and_watch(proc, workers), f"worker(s) {workers} still alive 10 s after the run was killed"
