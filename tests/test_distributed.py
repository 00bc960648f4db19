"""Several processes under torchrun (gloo, CPU) and interrupted runs: the outputs must not change.

- per-image steps with 2 processes write what 1 process writes;
- DDP training with world size 2 and batch B matches one process with batch 2B;
- a run killed with SIGKILL and run again ends with the outputs of an uninterrupted run.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import irn_test_argv

from GCN import make_dataset
from GCN import train as gcn_train
from IRN import run_sample
from IRN.net.resnet50_cam import CAMNet
from wsgcn.infra.io import load_npz
from wsgcn.infra.layout import WorkDir
from wsgcn.seg.dataset import read_image_list

ROOT = Path(__file__).resolve().parents[1]


def torchrun(script, argv, nproc=2):
    """Run ``script`` under torchrun with ``nproc`` CPU processes; returns the completed process."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(ROOT / script), *argv]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def irn_argv(irn_run, demo_root, work, *steps):
    """The IRN test run's argv, pointed at ``work``, running only ``steps`` (flags without _pass)."""
    argv = irn_test_argv(demo_root, work)
    for flag, _ in run_sample.STEPS:
        argv += [f"--{flag}", str(flag[: -len("_pass")] in steps)]
    return argv


def gcn_argv(demo_root, work, *extra):
    return ["--work_dir", str(work), "--voc12_root", str(demo_root / "VOC2012"),
            "--train_list", str(demo_root / "val.txt"), "--cls_labels", str(demo_root / "cls_labels.txt"),
            "--max_epoch", "20", "--num_workers", "0", "--quiet", "True", *extra]


def copy_work(irn_run, tmp_path, name):
    """A copy of the IRN run's work dir (weights, CAMs, IRNet outputs) under ``tmp_path/name``,
    without what other tests' GCN runs may have added to it (a re-run would skip those images)."""
    _, work, _ = irn_run
    copy = Path(shutil.copytree(work, tmp_path / name))
    layout = WorkDir(copy)
    for folder in (layout.partial_labels, layout.partial_labels_full, copy / "GCN4DeepLab"):
        shutil.rmtree(folder, ignore_errors=True)
    return copy


def same_npz_folders(a, b, names):
    for name in names:
        x, y = load_npz(a / f"{name}.npz"), load_npz(b / f"{name}.npz")
        assert sorted(x) == sorted(y)
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=f"{name}.npz: {key}")


def test_per_image_steps_with_two_processes_equal_one(irn_run, demo_root, tmp_path):
    names = read_image_list(demo_root / "val.txt")
    one, two = copy_work(irn_run, tmp_path, "one"), copy_work(irn_run, tmp_path, "two")
    for work in (one, two):
        shutil.rmtree(work / "IRN4GCN" / "CAM")
    # both under torchrun, so that both run with the same number of threads per process
    torchrun("IRN/run_sample.py", irn_argv(irn_run, demo_root, one, "make_cam"), nproc=1)
    torchrun("IRN/run_sample.py", irn_argv(irn_run, demo_root, two, "make_cam"))
    cams = read_image_list(demo_root / "train.txt") + names
    same_npz_folders(one / "IRN4GCN/CAM", two / "IRN4GCN/CAM", cams)

    make_dataset.main(gcn_argv(demo_root, one))
    make_dataset.main(gcn_argv(demo_root, two))
    torchrun("GCN/train.py", gcn_argv(demo_root, one), nproc=1)
    done = torchrun("GCN/train.py", gcn_argv(demo_root, two))
    assert done.stdout.count("GCN: 2 images") == 2  # 4 images, 2 per process
    same_npz_folders(one / "GCN4DeepLab/Logit", two / "GCN4DeepLab/Logit", names)


def test_ddp_training_matches_one_process_with_the_global_batch(irn_run, demo_root, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    # frozen batch norm: batch statistics would be per process, so the two runs would differ
    common = ["--cam_frozen_bn", "True", "--cam_optimizer", "sgd", "--cam_learning_rate", "0.001"]
    run_sample.main(irn_argv(irn_run, demo_root, one, "train_cam") + common)
    two_argv = irn_argv(irn_run, demo_root, two, "train_cam") + common
    two_argv[two_argv.index("--cam_batch_size") + 1] = "2"   # 2 processes x 2 = the global batch of 4
    torchrun("IRN/run_sample.py", two_argv)
    a = torch.load(one / "sess/res50_cam.pth", weights_only=True)
    b = torch.load(two / "sess/res50_cam.pth", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=2e-5, rtol=1e-4, msg=lambda m: f"{key}: {m}")
    torch.manual_seed(0)  # train_cam's initialisation (seed 0): the runs did move away from it
    initial = CAMNet(frozen_bn=True).state_dict()
    assert (a["classifier.weight"] - initial["classifier.weight"]).abs().max() > 1e-4


def start(script, argv):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(ROOT / script), *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def kill_when(process, ready, timeout=240):
    """SIGKILL ``process`` as soon as ``ready()`` holds; fails if it ended before."""
    deadline = time.time() + timeout
    while not ready():
        assert process.poll() is None, f"the run ended before it could be interrupted: {process.stderr.read()[-2000:]}"
        assert time.time() < deadline, "timed out waiting for the run to get going"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_killed_gcn_run_resumes_to_identical_outputs(irn_run, demo_root, tmp_path):
    names = read_image_list(demo_root / "val.txt")
    reference, killed = copy_work(irn_run, tmp_path, "reference"), copy_work(irn_run, tmp_path, "killed")
    for work in (reference, killed):
        make_dataset.main(gcn_argv(demo_root, work))
    argv = lambda work: gcn_argv(demo_root, work, "--max_epoch", "150")  # noqa: E731
    gcn_train.main(argv(reference))

    labels = killed / "GCN4DeepLab/Label"
    # the finished label maps: not the hidden temporary (.<name>.<random>.part.png) being written
    finished = lambda: sorted(p.stem for p in labels.glob("[!.]*.png")) if labels.is_dir() else []  # noqa: E731
    run = start("GCN/train.py", argv(killed))
    kill_when(run, lambda: len(finished()) >= 1)
    written = finished()
    assert 1 <= len(written) < len(names)
    rerun = subprocess.run([sys.executable, str(ROOT / "GCN/train.py"), *argv(killed)], capture_output=True,
                           text=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT)))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(written)} of {len(names)} images already done" in rerun.stderr
    same_npz_folders(reference / "GCN4DeepLab/Logit", killed / "GCN4DeepLab/Logit", names)


def test_killed_training_resumes_to_identical_weights(irn_run, demo_root, tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    argv = lambda work: irn_argv(irn_run, demo_root, work, "train_cam") + ["--cam_num_epoches", "4"]  # noqa: E731
    run_sample.main(argv(reference))
    state = killed / "sess/res50_cam.resume.pth"
    run = start("IRN/run_sample.py", argv(killed))
    kill_when(run, state.is_file)
    assert not (killed / "sess/res50_cam.pth").exists()  # killed before the end
    epochs_done = torch.load(state, weights_only=True)["epoch"]
    assert 1 <= epochs_done < 4
    run_sample.main(argv(killed) + ["--resume", "True"])
    a = torch.load(reference / "sess/res50_cam.pth", weights_only=True)
    b = torch.load(killed / "sess/res50_cam.pth", weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_refuses_a_state_of_another_run(irn_run, demo_root, tmp_path, capsys):
    work = tmp_path / "work"
    argv = irn_argv(irn_run, demo_root, work, "train_cam")
    run_sample.main(argv)
    with pytest.raises(SystemExit) as stop:
        run_sample.main(argv + ["--resume", "True", "--cam_num_epoches", "2"])
    assert stop.value.code == 2
    assert "res50_cam.resume.pth: made for a run of 2 steps, this one has 4" in capsys.readouterr().err


def test_nccl_runs_join_with_a_timeout_and_wait_on_a_gloo_group(monkeypatch):
    """Barriers and object gathers go through a gloo group (rank 0 may evaluate or save for long
    while the others wait; NCCL would time out or need the GPU), the timeout is the setting's,
    CUDA's device is set even for one process, and the group is left at exit."""
    import datetime

    import torch.distributed as dist

    from wsgcn.infra import distributed

    calls = {}
    state = {"initialised": False}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.setdefault("set_device", device))
    monkeypatch.setattr(dist, "is_initialized", lambda: state["initialised"])
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)

    def init_process_group(backend, timeout):
        calls["init"] = (backend, timeout)
        state["initialised"] = True

    monkeypatch.setattr(dist, "init_process_group", init_process_group)
    monkeypatch.setattr(dist, "new_group", lambda backend, timeout: ("gloo group", backend, timeout))
    monkeypatch.setattr(dist, "barrier", lambda group=None: calls.setdefault("barrier", group))
    monkeypatch.setattr(dist, "all_gather_object", lambda out, obj, group=None: calls.setdefault("gather", group))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.setdefault("destroyed", True))
    exits = []
    monkeypatch.setattr(distributed.atexit, "register", exits.append)

    distributed.init(torch.device("cuda", 1), timeout_minutes=7)
    timeout = datetime.timedelta(minutes=7)
    assert calls["set_device"] == torch.device("cuda", 1) and calls["init"] == ("nccl", timeout)
    distributed.barrier()
    distributed.gather("x")
    assert calls["barrier"] == calls["gather"] == ("gloo group", "gloo", timeout)
    assert exits == [distributed.shutdown]
    distributed.shutdown()
    assert calls["destroyed"] and distributed._CPU_GROUP is None


def test_resume_state_keeps_no_per_gpu_rng_so_fewer_gpus_can_resume(tmp_path, monkeypatch):
    """A state saved on 8 GPUs resumes on 1: no per-GPU RNG state is saved or restored (training
    draws no CUDA random numbers), and an older state's "cuda" entry is ignored."""
    from wsgcn.infra.training import load_training_state, poly_schedule, save_training_state

    def no_gpu_state(*args, **kwargs):
        raise AssertionError("per-GPU RNG state touched")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for name in ("get_rng_state_all", "set_rng_state_all", "get_rng_state", "set_rng_state"):
        monkeypatch.setattr(torch.cuda, name, no_gpu_state)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = poly_schedule(optimizer, 10)
    path = tmp_path / "state.pth"
    save_training_state(path, model, optimizer, scheduler, 1, 5, 10)
    state = torch.load(path, weights_only=True)
    assert set(state["rng"]) == {"cpu"}
    state["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)] * 8  # as older versions saved on 8 GPUs
    torch.save(state, path)
    assert load_training_state(path, model, optimizer, scheduler, 10) == (1, 5)


def test_pinned_memory_follows_the_device_in_use(monkeypatch):
    """A CPU run on a machine with a GPU does not pin (and hold) page-locked memory."""
    from wsgcn.infra.training import train_loader

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    dataset = list(range(8))
    assert not train_loader(dataset, 2, 0, 0, torch.device("cpu")).pin_memory
    assert train_loader(dataset, 2, 0, 0, torch.device("cuda", 0)).pin_memory
