"""Running under ``torchrun``: which process this is, and the little communication the steps need.

    torchrun --nproc_per_node 4 IRN/run_sample.py ...          # one machine, 4 GPUs
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint host:29400 ...

Without torchrun (no ``WORLD_SIZE`` in the environment) every function here is the trivial
single-process answer, so the steps run the same code either way.  Training steps use
DistributedDataParallel; per-image steps take every ``world_size``-th image (:func:`shard`) and
never communicate until the end of the step.
"""
import atexit
import datetime
import os

import torch
import torch.distributed as dist

_CPU_GROUP = None  # gloo group for barriers and object gathers: no device work, no NCCL timeout


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


def init(device, timeout_minutes=60):
    """Use ``device`` for this process's CUDA work, and join the process group torchrun set up
    (NCCL on CUDA, gloo on the CPU; no-op alone) with a ``timeout_minutes`` wait, plus a gloo
    group for :func:`barrier` and :func:`gather` (rank 0 may evaluate or save for a long time
    while the others wait there).  The group is left at exit."""
    global _CPU_GROUP
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size() > 1 and not dist.is_initialized():
        timeout = datetime.timedelta(minutes=timeout_minutes)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
        _CPU_GROUP = dist.new_group(backend="gloo", timeout=timeout) if device.type == "cuda" else None
        atexit.register(shutdown)


def shutdown():
    """Leave the process group (torchrun warns about groups not destroyed)."""
    global _CPU_GROUP
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _CPU_GROUP = None


def shard(names):
    """This process's part of a list: every world_size-th item from its rank, so that the parts
    are disjoint, cover the list, and depend only on the list and the process count."""
    return list(names)[rank()::world_size()]


def barrier():
    if active():
        dist.barrier(group=_CPU_GROUP)


def any_process(flag):
    """True when ``flag`` is true in any process (every process must call it); ``flag`` alone."""
    if not active():
        return bool(flag)
    flags = torch.tensor([int(bool(flag))])
    dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=_CPU_GROUP)
    return bool(flags.item())


def gather(obj):
    """A list of every process's ``obj`` (picklable), in rank order; ``[obj]`` alone."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj, group=_CPU_GROUP)
    return out


def wrap_ddp(model, device):
    """The model in DistributedDataParallel when several processes train it; unchanged alone."""
    if not active():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
