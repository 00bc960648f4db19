"""wsgcn/infra/training.py: the one training loop (accumulation, resuming at any step, logging, saved
states) on a small linear regression whose samples are augmented with seeded noise."""
import pytest
import torch
from conftest import read_scalars

from wsgcn.infra import training
from wsgcn.infra.training import (
    load_training_state,
    poly_schedule,
    save_training_state,
    train_epochs,
    train_loader,
    train_steps,
)
from wsgcn.seg.augment import SeededDataset


class Regression(SeededDataset):
    """Sample i: a fixed input x_i (4,) and target y_i (2,) plus noise drawn from (seed, epoch, i)."""

    def __init__(self, count, seed=0):
        super().__init__(None, range(count), seed)
        generator = torch.Generator().manual_seed(1)
        self.x, self.y = torch.randn(count, 4, generator=generator), torch.randn(count, 2, generator=generator)

    def __getitem__(self, idx):
        noise = torch.from_numpy(self.rng(idx).normal(size=2).astype("float32"))
        return {"x": self.x[idx], "y": self.y[idx] + 0.1 * noise}


def setup(count, batch_size, max_step):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = train_loader(Regression(count), batch_size, num_workers=0, seed=3)
    return model, optimizer, poly_schedule(optimizer, max_step), loader


def losses_of(model):
    def losses(batch):
        error = model(batch["x"]) - batch["y"]
        return {"total": error.pow(2).mean(), "abs": error.abs().mean()}
    return losses


def train(tmp_path, name, count=12, batch_size=2, iter_size=1, max_step=7, start_over=None, **kwargs):
    """train_steps on a fresh model; start_over(model, optimizer, scheduler) -> the step to start at."""
    model, optimizer, scheduler, loader = setup(count, batch_size, max_step)
    start = start_over(model, optimizer, scheduler) if start_over else 0
    losses = train_steps(name, model, loader, optimizer, scheduler, max_step, losses_of(model), tmp_path / name,
                         start=start, iter_size=iter_size, quiet=True, **kwargs)
    return model, losses


def test_accumulating_two_batches_equals_one_batch_of_twice_the_size(tmp_path):
    """iter_size 2 x batch 2 takes the samples batch 4 takes, step by step (two passes), and
    averages the two halves' gradients: the same weights and the same logged losses."""
    whole, whole_losses = train(tmp_path, "whole", batch_size=4, max_step=6)
    halves, halves_losses = train(tmp_path, "halves", batch_size=2, iter_size=2, max_step=6)
    torch.testing.assert_close(halves.weight, whole.weight)
    torch.testing.assert_close(halves.bias, whole.bias)
    assert halves_losses["total"] == pytest.approx(whole_losses["total"], rel=1e-5)
    a, b = read_scalars(tmp_path / "whole"), read_scalars(tmp_path / "halves")
    assert set(a) == {"whole/total", "whole/abs", "whole/lr"} and set(b) == {"halves/total", "halves/abs", "halves/lr"}
    assert [s for s, _ in a["whole/total"]] == [s for s, _ in b["halves/total"]] == list(range(6))
    assert [v for _, v in b["halves/total"]] == pytest.approx([v for _, v in a["whole/total"]], rel=1e-5)
    assert [v for _, v in b["halves/lr"]] == [v for _, v in a["whole/lr"]]


def test_a_run_resumed_in_mid_pass_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    """6 batches a pass, 2 a step: the state saved after step 2 is 4 batches into the first pass;
    resumed from it (the sampler told to skip those 4), the run ends bit-identical."""
    reference, _ = train(tmp_path, "reference", iter_size=2)
    state = tmp_path / "state.pth"
    save = training.save_training_state

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt  # as a kill would: nothing after the save runs

    monkeypatch.setattr(training, "save_training_state", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, "killed", iter_size=2, save_at=range(2, 7, 2), state_path=state, run={"iter_size": 2})
    monkeypatch.undo()
    saved = torch.load(state, weights_only=True)
    assert (saved["step"], saved["epoch"]) == (2, 0)  # 4 of the first pass's 6 batches

    resumed, _ = train(tmp_path, "resumed", iter_size=2, start_over=lambda *objects: load_training_state(
        state, *objects, max_step=7, run={"iter_size": 2})[1])
    assert torch.equal(resumed.weight, reference.weight) and torch.equal(resumed.bias, reference.bias)
    # the resumed run logs the steps it took, at their own indices
    assert [s for s, _ in read_scalars(tmp_path / "resumed")["resumed/total"]] == [2, 3, 4, 5, 6]


def test_a_state_in_the_format_deeplab_wrote_before_resumes(tmp_path):
    """States written before the loop was shared: DeepLab's had ``epoch`` None, older ones a
    per-GPU ``cuda`` RNG entry; they load and the run continues as an uninterrupted one."""
    reference, _ = train(tmp_path, "reference", iter_size=2)
    model, optimizer, scheduler, loader = setup(12, 2, 7)
    train_steps("first", model, loader, optimizer, scheduler, 3, losses_of(model), tmp_path / "first",
                iter_size=2, quiet=True)  # the first 3 of 7 steps (the schedule is the 7-step one)
    state = tmp_path / "old.pth"
    save_training_state(state, model, optimizer, scheduler, None, 3, 7, run={"iter_size": 2})
    old = torch.load(state, weights_only=True)
    old["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)]
    assert set(old) == {"model", "optimizer", "scheduler", "epoch", "step", "max_step", "rng", "run"}
    torch.save(old, state)
    torch.manual_seed(0)  # what the old state holds must win over the RNG's state now

    resumed, _ = train(tmp_path, "resumed", iter_size=2, start_over=lambda *objects: load_training_state(
        state, *objects, max_step=7, run={"iter_size": 2})[1])
    assert torch.equal(resumed.weight, reference.weight) and torch.equal(resumed.bias, reference.bias)


def test_epochs_save_a_state_after_each_and_call_after_epoch_first(tmp_path, monkeypatch):
    """train_epochs: a state after every epoch (the last too), after_epoch(epoch, step, ...) before
    it; losses and group 0's rate logged under the step's name; a resumed run goes on after the
    state's epoch."""
    saved, calls = [], []
    save = training.save_training_state
    monkeypatch.setattr(training, "save_training_state",
                        lambda path, model, optimizer, scheduler, epoch, step, *rest: (
                            saved.append((epoch, step)), save(path, model, optimizer, scheduler, epoch, step, *rest)))
    model, optimizer, _, loader = setup(12, 4, 9)
    state = tmp_path / "state.pth"
    after = lambda epoch, step, writer, bar: calls.append((epoch, step, len(saved)))  # noqa: E731
    losses = train_epochs("epochs", model, loader, optimizer, 3, tmp_path / "logs", losses_of(model), quiet=True,
                          after_epoch=after, state_path=state)
    assert saved == [(1, 3), (2, 6), (3, 9)]
    assert calls == [(0, 3, 0), (1, 6, 1), (2, 9, 2)]
    assert set(losses) == {"total", "abs"}
    scalars = read_scalars(tmp_path / "logs")
    assert set(scalars) == {"epochs/total", "epochs/abs", "epochs/lr"}
    assert [s for s, _ in scalars["epochs/lr"]] == list(range(9))

    model, optimizer, _, loader = setup(12, 4, 12)
    with pytest.raises(ValueError, match="made for a run of 9 steps, this one has 12"):
        train_epochs("epochs", model, loader, optimizer, 4, tmp_path / "more", losses_of(model), quiet=True,
                     state_path=state, resume=True)


def test_a_non_finite_loss_stops_the_run_before_the_optimiser_steps(tmp_path):
    """The loss turns NaN at step 3 (a sample's input, hence its loss): Diverged names the step,
    the run's name and the hint, and the weights are those after step 2."""
    model, optimizer, scheduler, loader = setup(12, 2, 7)
    seen = []

    def poisoned(batch):
        losses = losses_of(model)(batch)
        seen.append(losses["total"].item())
        if len(seen) == 3:
            losses["total"] = losses["total"] * float("nan")
        return losses

    before = {}

    def remember(step, writer, bar):
        before.update({k: v.clone() for k, v in model.state_dict().items()})

    with pytest.raises(training.Diverged, match=r"^toy: the loss is nan at step 3 of 7: training diverged; "
                                                r"lower the rate; no weights written$"):
        train_steps("toy", model, loader, optimizer, scheduler, 7, poisoned, tmp_path / "toy", quiet=True,
                    save_at=[2], before_save=remember, diverged_hint="lower the rate")
    assert len(seen) == 3
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_an_infinite_loss_stops_the_run_too(tmp_path):
    model, optimizer, scheduler, loader = setup(12, 2, 7)

    def infinite(batch):
        return {"total": losses_of(model)(batch)["total"] * float("inf")}

    with pytest.raises(training.Diverged, match=r"the loss is inf at step 1 of 7: training diverged; no weights"):
        train_steps("toy", model, loader, optimizer, scheduler, 7, infinite, tmp_path / "toy", quiet=True)
