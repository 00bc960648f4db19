"""Running under ``torchrun``: which process this is, and the little communication the steps need.

    torchrun --nproc_per_node 4 IRN/run_sample.py ...          # one machine, 4 GPUs
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint host:29400 ...

Without torchrun (no ``WORLD_SIZE`` in the environment) every function here is the trivial
single-process answer, so the steps run the same code either way.  Training steps use
DistributedDataParallel; per-image steps take every ``world_size``-th image (:func:`shard`) and
never communicate until the end of the step.
"""
import os

import torch
import torch.distributed as dist


def world_size():
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank():
    return int(os.environ.get("RANK", "0"))


def local_rank():
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main():
    return rank() == 0


def active():
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device):
    """Join the process group torchrun set up (NCCL on CUDA, gloo on the CPU); no-op alone.
    device: the torch.device this process computes on."""
    if world_size() > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shard(names):
    """This process's part of a list: every world_size-th item from its rank, so that the parts
    are disjoint, cover the list, and depend only on the list and the process count."""
    return list(names)[rank()::world_size()]


def barrier():
    if active():
        dist.barrier()


def gather(obj):
    """A list of every process's ``obj`` (picklable), in rank order; ``[obj]`` alone."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def wrap_ddp(model, device):
    """The model in DistributedDataParallel when several processes train it; unchanged alone."""
    if not active():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
