"""What train_cam and train_irn share: the optimiser, the polynomial schedule, the loader."""
import torch
from tensorboardX import SummaryWriter
from torch.utils.data import DataLoader

from wsgcn.runtime import progress


def make_optimizer(kind, param_groups, weight_decay):
    """SGD with momentum 0.9 (the paper) or AdamW; each group carries its own ``lr``."""
    for group in param_groups:
        group.setdefault("weight_decay", weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(param_groups, lr=param_groups[0]["lr"], momentum=0.9, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(param_groups, lr=param_groups[0]["lr"], weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {kind!r}: use sgd or adamw")


def poly_schedule(optimizer, max_step, power=0.9):
    """lr_t = lr_0 (1 - t / max_step)^power, stepped once per optimisation step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / max_step) ** power)


def train_loader(dataset, batch_size, num_workers, seed):
    """Shuffled batches, last partial batch dropped (as the original); the shuffle order is seeded."""
    if len(dataset) < batch_size:
        raise ValueError(f"the training list has {len(dataset)} images, fewer than one batch of {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=num_workers,
                      generator=generator, pin_memory=torch.cuda.is_available(),
                      persistent_workers=num_workers > 0)


def log_writer(log_dir):
    return SummaryWriter(str(log_dir))


def train_epochs(name, dataset, loader, optimizer, epochs, log_dir, losses_of, quiet=False, after_epoch=None):
    """The training loop train_cam and train_irn share: ``epochs`` passes over ``loader``, one
    optimiser step and one step of the polynomial schedule per batch, losses and learning rate
    to TensorBoard under ``log_dir`` and to a progress bar.

    losses_of(batch) -> dict of scalar tensors with the one to minimise under ``"total"``.
    after_epoch(epoch, step, writer, bar), if given, runs at the end of each epoch (validation).
    Returns the last batch's losses.
    """
    max_step = len(loader) * epochs
    scheduler = poly_schedule(optimizer, max_step)
    writer = log_writer(log_dir)
    bar = progress(range(max_step), name, quiet, unit="step")
    step, losses = 0, {}
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            losses = losses_of(batch)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            for key, value in losses.items():
                writer.add_scalar(f"{name}/{key}", value.item(), step)
            writer.add_scalar(f"{name}/lr", optimizer.param_groups[0]["lr"], step)
            scheduler.step()
            step += 1
            bar.update()
            bar.set_postfix(epoch=epoch + 1, **{k: f"{v.item():.4f}" for k, v in losses.items()}, refresh=False)
        if after_epoch is not None:
            after_epoch(epoch, step, writer, bar)
    bar.close()
    writer.close()
    return losses
