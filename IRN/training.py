"""What train_cam and train_irn share: the optimiser, the polynomial schedule, the loader, and
the loop, which runs in one process or in several under torchrun (DistributedDataParallel) and
can resume from the checkpoint it writes after every epoch."""
import itertools
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from wsgcn import distributed
from IRN.net.checkpoint import load_torch_file
from wsgcn.io import save_torch
from wsgcn.tensorboard import ScalarLog
from wsgcn.runtime import progress, worker_init_fn


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
    ``skip`` samples into its epoch, so that a run resumed mid-epoch sees the rest of it."""
    skip = 0

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


def log_writer(log_dir):
    """TensorBoard scalars (:class:`wsgcn.tensorboard.ScalarLog`) in rank 0; None elsewhere."""
    return ScalarLog(log_dir) if distributed.is_main() else None


def _rng_state():
    # Training draws random numbers on the CPU only (augmentation has its own seeded generators,
    # and no network here has dropout), so no CUDA state is kept: a state of every visible GPU
    # would not restore on a machine with fewer.
    return {"cpu": torch.get_rng_state()}


def save_training_state(path, model, optimizer, scheduler, epoch, step, max_step, run=None):
    """The state after ``epoch`` epochs (model, optimiser, schedule, step, RNG), atomically.
    run: an optional dict of plain values describing the run (checked on loading)."""
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


def train_epochs(name, model, dataset, loader, optimizer, epochs, log_dir, losses_of, quiet=False,
                 after_epoch=None, state_path=None, resume=False):
    """The training loop train_cam and train_irn share: ``epochs`` passes over ``loader``, one
    optimiser step and one step of the polynomial schedule per batch (global steps: every
    process takes the same number), losses and learning rate to TensorBoard under ``log_dir``
    and to a progress bar (rank 0).

    model: the network (not its DDP wrapper); losses_of(batch) -> dict of scalar tensors with
    the one to minimise under ``"total"``, computed through the wrapper when there is one.
    after_epoch(epoch, step, writer, bar), if given, runs in rank 0 at the end of each epoch.
    state_path: rank 0 saves the training state there after every epoch; with ``resume`` an
    existing one is loaded first and training continues after its last epoch.
    Returns the last batch's losses (empty if nothing was left to train).
    """
    max_step = len(loader) * epochs
    scheduler = poly_schedule(optimizer, max_step)
    start_epoch, step = 0, 0
    if resume and state_path is not None and Path(state_path).is_file():
        start_epoch, step = load_training_state(state_path, model, optimizer, scheduler, max_step)
        print(f"{name}: resuming after epoch {start_epoch} of {epochs} from {state_path}", flush=True)
    writer = log_writer(log_dir)
    bar = progress(range(max_step), name, quiet or not distributed.is_main(), unit="step", initial=step)
    losses = {}
    for epoch in range(start_epoch, epochs):
        dataset.set_epoch(epoch)
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            losses = losses_of(batch)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            if writer is not None:
                for key, value in losses.items():
                    writer.add_scalar(f"{name}/{key}", value.item(), step)
                writer.add_scalar(f"{name}/lr", optimizer.param_groups[0]["lr"], step)
            scheduler.step()
            step += 1
            bar.update()
            bar.set_postfix(epoch=epoch + 1, **{k: f"{v.item():.4f}" for k, v in losses.items()}, refresh=False)
        if distributed.is_main():
            if after_epoch is not None:
                after_epoch(epoch, step, writer, bar)
            if state_path is not None:
                save_training_state(state_path, model, optimizer, scheduler, epoch + 1, step, max_step)
        distributed.barrier()
    bar.close()
    if writer is not None:
        writer.close()
    return losses
