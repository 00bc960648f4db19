"""wsgcn/infra/checkpoint.py: the one reader of weights files, the one strict loader, the one ImageNet fetcher."""
import pytest
import torch
import torchvision

from wsgcn.infra import checkpoint
from wsgcn.infra.checkpoint import imagenet_state_dict, load_checkpoint, load_torch_file, save_checkpoint


def test_a_dataparallel_checkpoint_loads_and_a_misfit_names_its_keys(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    wrapped = {f"module.{k}": v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(wrapped, tmp_path / "dp.pth")
    fresh = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    loaded = load_checkpoint(fresh, tmp_path / "dp.pth")  # DataParallel's prefix dropped, no num_batches_tracked
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in net.state_dict().items()
               if not k.endswith("num_batches_tracked"))
    save_checkpoint(net, tmp_path / "net.pth")
    with pytest.raises(ValueError, match=r"net.pth: does not fit Sequential: 2 missing \(e.g. \['2.weight', "
                                         r"'2.bias'\]\), 0 unexpected .* 2 of another shape \(e.g. "
                                         r"\['0.weight \(4, 3, 1, 1\) vs \(5, 3, 1, 1\)'"):
        load_checkpoint(torch.nn.Sequential(torch.nn.Conv2d(3, 5, 1), torch.nn.BatchNorm2d(4), torch.nn.Linear(1, 1)),
                        tmp_path / "net.pth")


def test_memory_errors_are_not_called_bad_files(tmp_path, monkeypatch):
    torch.save({"w": torch.zeros(1)}, tmp_path / "w.pth")

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(torch, "load", out_of_memory)
    with pytest.raises(MemoryError):
        load_torch_file(tmp_path / "w.pth")


def test_imagenet_weights_that_cannot_be_fetched_are_one_line_with_the_remedy(monkeypatch):
    def offline(self, progress=True, check_hash=False):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(ValueError, match=r"^could not fetch torchvision's ImageNet ResNet-101 weights \(no network\); "
                                         r"pass --init PATH$"):
        imagenet_state_dict(101, "pass --init PATH")
    assert set(checkpoint.IMAGENET_RESNETS) == {50, 101}
