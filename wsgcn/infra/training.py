"""Training for both stages: the optimiser, the polynomial schedule, the shuffled loader, the
resumable training state, and the one training loop (:func:`train_steps`; :func:`train_epochs`
is its epoch-based form, train_cam's and train_irn's).  The loop runs in one process or in
several under torchrun (DistributedDataParallel) and resumes at any step."""
import contextlib
import itertools
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from wsgcn.infra import distributed
from wsgcn.infra.checkpoint import load_torch_file
from wsgcn.infra.io import save_torch
from wsgcn.infra.runtime import progress, worker_init_fn
from wsgcn.infra.tensorboard import ScalarLog


class Diverged(ValueError):
    """A training loss became NaN or Inf: the run stops at that step (exit status 2) and writes
    no weights."""


def make_optimizer(kind, param_groups, weight_decay):
    """SGD with momentum 0.9 (the paper) or AdamW; each group carries its own ``lr``."""
    for group in param_groups:
        group.setdefault("weight_decay", weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(param_groups, lr=param_groups[0]["lr"], momentum=0.9, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(param_groups, lr=param_groups[0]["lr"], weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {kind!r}: use sgd or adamw")


def poly_factor(step, max_step, power=0.9, lr_step=1):
    """The learning rate after ``step`` optimisation steps over the base rate: (1 - t/max_step)^power
    with t = step rounded down to a multiple of ``lr_step`` (kazuto1011's PolynomialLR updates the
    rate every 10 steps; IRNet every step)."""
    held = step - step % lr_step
    return max(0.0, 1 - held / max_step) ** power


def poly_schedule(optimizer, max_step, power=0.9, lr_step=1):
    """The schedule of :func:`poly_factor`, stepped once per optimisation step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: poly_factor(step, max_step, power, lr_step))


class ShuffleSampler(DistributedSampler):
    """DistributedSampler (shuffled by seed + epoch, last partial part dropped) that can start
    ``skip`` samples into its epoch, so that a run resumed in mid-epoch sees the rest of it."""
    skip = 0

    def set_epoch(self, epoch, skip=0):
        """Shuffle by seed + ``epoch`` and leave out the first ``skip`` samples of this process's share."""
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self):
        return self.num_samples - self.skip


def train_loader(dataset, batch_size, num_workers, seed, device=None):
    """Shuffled batches of ``batch_size`` per process, last partial batch dropped (as the
    original).  The shuffle is seeded by (seed, epoch) and split across the processes, so
    world size W with batch B sees the batches one process with batch W*B sees."""
    world = distributed.world_size()
    if len(dataset) < batch_size * world:
        raise ValueError(f"the training list has {len(dataset)} images, fewer than one batch of "
                         f"{batch_size} x {world} process(es)")
    sampler = ShuffleSampler(dataset, num_replicas=world, rank=distributed.rank(), shuffle=True, seed=seed,
                             drop_last=True)
    # Workers are not persistent: each epoch's workers get the dataset's new epoch (augmentation seed).
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=num_workers,
                      pin_memory=device is not None and torch.device(device).type == "cuda",
                      worker_init_fn=worker_init_fn())


def batches_per_pass(loader):
    """The batches of a whole pass over a :func:`train_loader` (``len(loader)`` is less in a pass
    that starts late)."""
    return loader.sampler.num_samples // loader.batch_size


def passes(loader, start):
    """(epoch, batch) pairs of a :func:`train_loader`, pass after pass (pass p, the epoch, is
    shuffled and augmented with seed (seed, p)), from the ``start``-th batch of the whole sequence."""
    epoch, skip = divmod(start, batches_per_pass(loader))
    while True:
        loader.dataset.set_epoch(epoch)
        loader.sampler.set_epoch(epoch, skip * loader.batch_size)
        for batch in loader:
            yield epoch, batch
        epoch, skip = epoch + 1, 0


def log_writer(log_dir):
    """TensorBoard scalars (:class:`wsgcn.infra.tensorboard.ScalarLog`) in rank 0; None elsewhere."""
    return ScalarLog(log_dir) if distributed.is_main() else None


def _rng_state():
    # Training draws random numbers on the CPU only (augmentation has its own seeded generators,
    # and no network here has dropout), so no CUDA state is kept: a state of every visible GPU
    # would not restore on a machine with fewer.
    return {"cpu": torch.get_rng_state()}


def save_training_state(path, model, optimizer, scheduler, epoch, step, max_step, run=None):
    """The state after ``step`` steps, ``epoch`` passes over the data (model, optimiser, schedule,
    step, RNG), atomically.  run: an optional dict of plain values describing the run (checked on
    loading)."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "epoch": epoch, "step": step, "max_step": max_step, "rng": _rng_state()}
    if run is not None:
        state["run"] = dict(run)
    save_torch(path, state)


def load_training_state(path, model, optimizer, scheduler, max_step, run=None):
    """Restore what :func:`save_training_state` wrote; returns (epochs done, step).  A state
    made for another number of steps, or (given ``run``) another run description, is an error."""
    start_over = "; delete it, or pass --resume False to start over"
    state = load_torch_file(path, "resume state", start_over)
    expected = {"model", "optimizer", "scheduler", "epoch", "step", "max_step", "rng"}
    if not isinstance(state, dict) or not expected <= set(state):
        raise ValueError(f"{path}: not a resume state of this project (it lacks "
                         f"{sorted(expected - set(state)) if isinstance(state, dict) else 'everything'}){start_over}")
    if run is not None and state.get("run") != dict(run):
        saved = state.get("run") or {}
        changed = ", ".join(f"{key} {saved.get(key)!r} -> {run.get(key)!r}" for key in dict.fromkeys([*saved, *run])
                            if saved.get(key) != run.get(key))
        raise ValueError(f"{path}: made for another run ({changed}); use --resume False to start over")
    if state["max_step"] != max_step:
        raise ValueError(f"{path}: made for a run of {state['max_step']} steps, this one has {max_step} "
                         f"(other epochs, batch size, list or process count); use --resume False to start over")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["cpu"])  # a "cuda" entry of older states is not needed
    except (RuntimeError, ValueError, KeyError, TypeError) as e:  # made for another network or optimiser
        raise ValueError(f"{path}: does not fit this run ({' '.join(str(e).split())[:300]}){start_over}") from None
    return state["epoch"], state["step"]


def resume_path(weights_path):
    """Where a training step keeps its resumable state: ``<weights>.resume.pth``."""
    weights_path = Path(weights_path)
    return weights_path.with_name(weights_path.stem + ".resume.pth")


def train_steps(name, model, loader, optimizer, scheduler, max_step, losses_of, log_dir, *, start=0, net=None,
                iter_size=1, amp=False, objective="total", prefix=None, lr_tags=("lr",), save_at=(),
                state_path=None, run=None, before_save=None, quiet=False, unit="step", diverged_hint=""):
    """The training loop of both stages: optimisation steps ``start`` .. ``max_step`` - 1 of ``model``.

    Step t takes batches t * iter_size .. (t + 1) * iter_size - 1 of ``loader`` (a
    :func:`train_loader`; pass after pass, see :func:`passes`), so a run resumed at any step sees
    the batches an uninterrupted one does.  Each batch's objective, ``losses_of(batch)[objective]``
    (a scalar tensor, computed through ``net``: the DistributedDataParallel wrapper of ``model``,
    if any), is divided by ``iter_size`` and back-propagated, the gradients accumulating; under DDP
    ``net.no_sync()`` keeps all but the last from being averaged across the processes.  Then one
    optimiser step and one step of ``scheduler``.  amp: ``losses_of`` runs under bfloat16
    autocast on the model's device.

    Rank 0 logs each of the losses, summed over the step's batches, as ``<prefix>/<key>`` and
    the learning rate of param group i as ``<prefix>/<lr_tags[i]>`` (TensorBoard under
    ``log_dir``, at step t; prefix: ``name`` unless given) and shows them on a progress bar.
    After each step in ``save_at`` rank 0 runs before_save(step, writer, bar) if given and saves
    the training state (with ``run``, see :func:`save_training_state`) to ``state_path`` if
    given; the other processes wait for it.

    A non-finite objective (in any process) raises :class:`Diverged` before the optimiser steps:
    one line naming ``name``, the step and ``diverged_hint`` (the likely cause in this step).

    Returns the last step's losses {key: float} (empty if nothing was left to train).
    """
    net = model if net is None else net
    prefix = name if prefix is None else prefix
    per_pass = batches_per_pass(loader)
    batches = passes(loader, start * iter_size)
    writer = log_writer(log_dir)
    bar = progress(range(max_step), name, quiet or not distributed.is_main(), unit=unit, initial=start)
    autocast = (torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16) if amp
                else contextlib.nullcontext())
    logged = {}
    for step in range(start, max_step):
        optimizer.zero_grad(set_to_none=True)
        logged = {}
        for k in range(iter_size):
            epoch, batch = next(batches)
            # DDP: gradients are averaged across the processes on the last pass only
            sync = net.no_sync() if net is not model and k < iter_size - 1 else contextlib.nullcontext()
            with sync:
                with autocast:
                    losses = losses_of(batch)
                (losses[objective] / iter_size).backward()
            for key, value in losses.items():
                logged[key] = logged.get(key, 0.0) + (value.detach() / iter_size).item()
        # after backward, a collective under DDP, so that every process stops at the same step
        if distributed.any_process(not math.isfinite(logged[objective])):
            bar.close()
            raise Diverged(f"{name}: the loss is {logged[objective]} at step {step + 1} of {max_step}: training "
                           f"diverged{'; ' + diverged_hint if diverged_hint else ''}; no weights written")
        optimizer.step()
        rates = [group["lr"] for group in optimizer.param_groups]
        if writer is not None:
            for key, value in logged.items():
                writer.add_scalar(f"{prefix}/{key}", value, step)
            for tag, rate in zip(lr_tags, rates):
                writer.add_scalar(f"{prefix}/{tag}", rate, step)
        scheduler.step()
        bar.update()
        bar.set_postfix(epoch=epoch + 1, **{k: f"{v:.4f}" for k, v in logged.items()}, lr=f"{rates[0]:.2e}",
                        refresh=False)
        if step + 1 in save_at:
            if distributed.is_main():
                if before_save is not None:
                    before_save(step + 1, writer, bar)
                if state_path is not None:
                    passes_done = (step + 1) * iter_size // per_pass
                    save_training_state(state_path, model, optimizer, scheduler, passes_done, step + 1, max_step, run)
            distributed.barrier()
    batches.close()
    bar.close()
    if writer is not None:
        writer.close()
    return logged


def train_epochs(name, model, loader, optimizer, epochs, log_dir, losses_of, quiet=False, after_epoch=None,
                 state_path=None, resume=False, diverged_hint=""):
    """train_cam's and train_irn's training (:func:`train_steps`): ``epochs`` passes over
    ``loader``, one batch a step, the learning rate on IRNet's polynomial schedule (power 0.9,
    updated every step; group 0's rate logged as ``<name>/lr``), losses as ``<name>/<key>`` with
    ``"total"`` minimised.  After each epoch rank 0 runs after_epoch(epoch, step, writer, bar) if
    given (epoch counted from 0) and saves the training state to ``state_path`` if given; with
    ``resume`` an existing one is loaded first and training continues after its last epoch.
    Returns the last step's losses {key: float} (empty if nothing was left to train).
    """
    per_epoch = len(loader)
    max_step = per_epoch * epochs
    scheduler = poly_schedule(optimizer, max_step)
    start = 0
    if resume and state_path is not None and Path(state_path).is_file():
        done, start = load_training_state(state_path, model, optimizer, scheduler, max_step)
        print(f"{name}: resuming after epoch {done} of {epochs} from {state_path}", flush=True)

    def end_of_epoch(step, writer, bar):
        after_epoch(step // per_epoch - 1, step, writer, bar)

    return train_steps(name, model, loader, optimizer, scheduler, max_step, losses_of, log_dir, start=start,
                       save_at=range(per_epoch, max_step + 1, per_epoch), state_path=state_path,
                       before_save=end_of_epoch if after_epoch is not None else None, quiet=quiet,
                       diverged_hint=diverged_hint)
