"""Device choice and worker counts under torchrun, with the CUDA runtime emulated."""
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
