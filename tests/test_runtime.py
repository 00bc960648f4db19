"""Device choice and worker counts under torchrun, with the CUDA runtime emulated."""
import time

import pytest
import torch

from wsgcn.infra import runtime


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)


def torchrun_env(monkeypatch, local_rank, world=8, local_world=4):
    for key, value in (("WORLD_SIZE", world), ("RANK", local_rank), ("LOCAL_RANK", local_rank),
                       ("LOCAL_WORLD_SIZE", local_world)):
        monkeypatch.setenv(key, str(value))


def test_one_process_takes_the_named_gpu(four_gpus, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert runtime.resolve_device("cuda") == torch.device("cuda", 0)
    assert runtime.resolve_device("cuda:2") == torch.device("cuda", 2)
    assert runtime.resolve_device("") == torch.device("cuda", 0)
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"--device cuda:4: this machine has 4 visible GPU\(s\)"):
        runtime.resolve_device("cuda:4")


def test_under_torchrun_each_rank_takes_its_local_gpu(four_gpus, monkeypatch):
    torchrun_env(monkeypatch, local_rank=3)
    assert runtime.resolve_device("cuda") == torch.device("cuda", 3)
    assert runtime.resolve_device("") == torch.device("cuda", 3)
    with pytest.raises(ValueError, match="under torchrun each process uses its local GPU"):
        runtime.resolve_device("cuda:1")  # every rank would take GPU 1: NCCL's "Duplicate GPU"
    torchrun_env(monkeypatch, local_rank=5, world=16, local_world=8)
    with pytest.raises(ValueError, match=r"LOCAL_RANK 5: this machine has 4 visible GPU\(s\)"):
        runtime.resolve_device("cuda")


def test_no_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        runtime.resolve_device("cuda")


def test_default_workers_are_shared_among_the_local_processes(monkeypatch):
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 16)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert runtime.default_workers() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert runtime.default_workers() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert runtime.default_workers() == 1


def test_a_bar_in_a_log_file_prints_lines_at_its_interval_and_at_the_end(monkeypatch, capsys):
    """stderr is not a terminal here: whole lines (no carriage returns), a line while one long
    item is still running (the heartbeat), none between quick items within the interval."""
    monkeypatch.setattr(runtime, "LOG_INTERVAL_S", 0.5)
    bar = runtime.progress(range(3), "slow", unit="step")
    for i in bar:
        time.sleep(2.6 if i == 0 else 0.0)
        bar.set_postfix(loss=f"{i:.4f}", refresh=False)
    slow = capsys.readouterr().err
    assert "\r" not in slow
    lines = slow.splitlines()
    assert all(line.startswith("slow: ") for line in lines), lines
    assert "0/3" in lines[0] and "3/3" in lines[-1] and "loss=2.0000" in lines[-1]
    assert sum("0/3" in line for line in lines) >= 3, lines  # the start, heartbeats at 00:01 and 00:02

    monkeypatch.setattr(runtime, "LOG_INTERVAL_S", 60)
    for _ in runtime.progress(range(50), "quick"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "0/50" in lines[0] and "50/50" in lines[1] and "img/s" in lines[1], lines


class _BlasThreads(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, idx):
        import threadpoolctl
        return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


def test_data_loading_workers_run_blas_on_one_thread():
    import numpy  # noqa: F401  (its BLAS loaded before the worker starts, as in the steps)
    import scipy.sparse.linalg  # noqa: F401
    loader = torch.utils.data.DataLoader(_BlasThreads(), batch_size=None, num_workers=1,
                                         worker_init_fn=runtime.worker_init_fn())
    threads = next(iter(loader))
    assert threads and all(n == 1 for n in threads), threads
