"""The same computations on CUDA as on the CPU: skipped where no GPU is visible (CI runs the
suite with CUDA_VISIBLE_DEVICES=""); scripts/gpu_check.sh runs them on a GPU box."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from DeepLab import train as deeplab_train
from DeepLab.net.deeplab_v2 import deeplab_v2
from GCN.batch import GridBatch
from GCN.bench import synthetic_inputs
from GCN.config import GCNConfig
from GCN.graph import graph_mode
from GCN.train import train_gcn
from IRN.net.resnet50_cam import CAMNet
from IRN.step.make_cam import compute_cams

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.fixture(autouse=True)
def full_precision():
    """fp32 matrix products and convolutions on CUDA (TF32 would differ from the CPU by ~1e-3)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_the_lowmem_graph_gives_the_same_product_on_cuda():
    inputs = synthetic_inputs(40, 52)
    cfg = GCNConfig()
    parts = graph_mode("lowmem").prepare(inputs.boundary, cfg)
    y = torch.randn(40 * 52, 7, generator=torch.Generator().manual_seed(0))
    products = [graph_mode("lowmem").assemble([parts], GridBatch([(40, 52)], device), cfg)(y.to(device)).cpu()
                for device in (CPU, CUDA)]
    torch.testing.assert_close(products[1], products[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_a_gcn_trains_to_the_same_labels_on_cuda(batch):
    images = [replace(synthetic_inputs(30, 41, seed), name=f"synthetic{seed}") for seed in range(batch)]
    cfg = replace(GCNConfig(), max_epoch=30)
    results = [train_gcn(images, cfg, device) for device in (CPU, CUDA)]
    for (cpu, _), (cuda, _) in zip(*results):
        agreement = (cpu.argmax(0) == cuda.cpu().argmax(0)).float().mean().item()
        assert agreement > 0.99, agreement
        torch.testing.assert_close(cuda.cpu().exp(), cpu.exp(), rtol=0, atol=1e-3)


def test_cams_are_the_same_on_cuda():
    torch.manual_seed(0)
    model = CAMNet().eval()
    image = torch.rand(1, 3, 75, 99)
    pyramid = [torch.cat([image, image.flip(-1)])]
    classes = torch.tensor([2, 7])
    cpu = compute_cams(model, pyramid, (75, 99), classes)
    cuda = compute_cams(model.to(CUDA), [p.to(CUDA) for p in pyramid], (75, 99), classes.to(CUDA))
    for a, b in zip(cpu, cuda):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-4)


def test_deeplab_gives_the_same_logits_on_cuda():
    torch.manual_seed(0)
    model = deeplab_v2("caffe", 21, 101).eval()
    image = torch.rand(1, 3, 81, 65) * 255
    with torch.no_grad():
        cpu = model(image)
        cuda = model.to(CUDA)(image.to(CUDA))
    cpu, cuda = (cpu[-1], cuda[-1]) if isinstance(cpu, (list, tuple)) else (cpu, cuda)
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("flags", [[], ["--amp", "True"], ["--channels_last", "True"]])
def test_deeplab_trains_on_cuda_with_each_speed_flag(demo_root, tmp_path, capsys, flags):
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join((demo_root / "train.txt").read_text().split()[:2]) + "\n")
    deeplab_train.main(["--profile", "demo", "--work_dir", str(tmp_path / "work"), "--voc12_root",
                        str(demo_root / "VOC2012"), "--train_list", str(listing), "--label_dir", "ground_truth",
                        "--init", "none", "--crop_size", "64", "--batch_size", "2", "--iterations", "3",
                        "--num_workers", "0", "--quiet", "True", "--device", "cuda", *flags])
    out = capsys.readouterr().out
    loss = float(out.split("final loss ")[1].split(",")[0])
    assert np.isfinite(loss) and (tmp_path / "work/sess/deeplab.pth").is_file()
