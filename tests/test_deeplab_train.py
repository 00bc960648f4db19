"""Stage II training (DeepLab/train.py): the network's shapes, the optimiser's groups, the poly
schedule, the label resizing, the training crops, and short CPU runs of the script."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import read_scalars
from PIL import Image
from test_distributed import torchrun

from DeepLab import train as deeplab_train
from DeepLab.config import DeepLabConfig
from DeepLab.datasets import TrainDataset, input_array, resize_bilinear, resize_labels
from DeepLab.net.deeplab_v2 import deeplab_v2, freeze_batch_norm, param_groups
from DeepLab.net.weights import initialise, load_deeplab
from IRN.net.resnet50_cam import CAMNet
from wsgcn.infra import training
from wsgcn.infra.checkpoint import save_checkpoint
from wsgcn.infra.io import save_label_png
from wsgcn.seg.voc import VOC12

SIZE = (65, 81)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: at these tiny sizes a second OpenMP thread mostly waits, and on a
    busy 2-core machine its spinning made an iteration 2-20 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def out_size(backbone, size, scale=1.0):
    """The logits' size of an image at ``scale`` (F.interpolate floors): output stride 8, the
    stride-2 steps rounding up (torchvision: ceil(n / 8)), except the caffe stem's ceil-mode
    max-pool, which gives one more for n = 0 or 7 (mod 8)."""
    n = [int(n * scale) for n in size]
    if backbone == "torchvision":
        return tuple(math.ceil(k / 8) for k in n)
    return tuple(math.ceil((math.ceil(k / 2) // 2 + 1) / 2) for k in n)


@pytest.fixture(scope="module", params=["caffe", "torchvision"])
def network(request):
    torch.manual_seed(0)
    return request.param, deeplab_v2(request.param, 21, depth=50)


def test_output_stride_8_and_msc_outputs(network):
    backbone, model = network
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        model.eval()
        logits_max = model(x)
        model.train()
        freeze_batch_norm(model)
        outputs = model(x)
    assert logits_max.shape == (1, 21, 9, 11) == (1, 21, *out_size(backbone, SIZE))
    sizes = [out_size(backbone, SIZE, s) for s in (1.0, 0.5, 0.75, 1.0)]
    assert [tuple(o.shape[2:]) for o in outputs] == sizes
    assert sizes[1] == ((4, 5) if backbone == "torchvision" else (5, 6))  # 32 x 40
    resized = [F.interpolate(o, size=outputs[0].shape[2:], mode="bilinear", align_corners=False)
               for o in outputs[1:3]]
    assert torch.equal(outputs[3], torch.maximum(torch.maximum(outputs[0], resized[0]), resized[1]))
    torch.testing.assert_close(outputs[3], logits_max)  # frozen batch norm: training = evaluation


def test_param_groups(network):
    backbone, model = network
    groups = param_groups(model, 1e-3, 5e-4, aspp_weight_mult=10, aspp_bias_mult=20)
    assert [g["lr"] for g in groups] == [1e-3, 1e-2, 2e-2]
    assert [g["weight_decay"] for g in groups] == [5e-4, 5e-4, 0.0]
    names = {id(p): n for n, p in model.named_parameters()}
    in_groups = [[names[id(p)] for p in g["params"]] for g in groups]
    assert [len(n) for n in in_groups[1:]] == [4, 4]
    assert all(".aspp.c" in n and n.endswith(".weight") for n in in_groups[1])
    assert all(".aspp.c" in n and n.endswith(".bias") for n in in_groups[2])
    assert all(".layer" in n and "bn" not in n for n in in_groups[0])
    trained = {n for group in in_groups for n in group}
    bn = {f"{m}.{p}" for m, module in model.named_modules() if isinstance(module, torch.nn.BatchNorm2d)
          for p in ("weight", "bias")}
    assert bn and not bn & trained
    stem = "base.layer1.conv1.conv.weight" if backbone == "caffe" else "base.model2.conv1.weight"
    assert (stem in trained) == (backbone == "caffe")  # kazuto1011's stem is its layer1; torchvision's is not
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trained
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert len(trained) == convs + 4 - (backbone != "caffe")  # every conv's weight, the ASPP biases


def test_poly_schedule_holds_for_lr_step_iterations():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [param], "lr": 0.1}, {"params": [], "lr": 2.0}], lr=0.1)
    from wsgcn.infra.training import poly_factor, poly_schedule

    schedule = poly_schedule(optimizer, max_step=50, power=0.9, lr_step=10)
    seen = []
    for t in range(50):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        schedule.step()
    for t, lrs in enumerate(seen):
        factor = (1 - (t // 10 * 10) / 50) ** 0.9
        assert lrs == pytest.approx([0.1 * factor, 2.0 * factor], rel=1e-12)
    assert seen[9] == seen[0] and seen[10][0] == pytest.approx(0.1 * 0.8 ** 0.9)
    assert poly_factor(25, 50, 0.9, 1) == pytest.approx(0.5 ** 0.9)


def test_resize_labels_is_pils_nearest():
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 37, 53)).astype(np.int64))
    for size in ((5, 7), (19, 27), (41, 41), (80, 90), (37, 53)):
        expected = np.stack([np.asarray(Image.fromarray(m.numpy().astype(np.uint8)).resize(size[::-1], Image.NEAREST))
                             for m in labels])
        np.testing.assert_array_equal(resize_labels(labels, size).numpy(), expected)


def test_resize_bilinear_is_opencvs_linear():
    """Half-pixel centres without antialiasing: halving averages 2 x 2 blocks; enlarging is
    PIL's bilinear on floats (which, enlarging, has no antialiasing to differ by)."""
    img = np.random.default_rng(1).uniform(0, 255, (12, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(resize_bilinear(img, (6, 8)), img.reshape(6, 2, 8, 2, 3).mean((1, 3)), atol=1e-4)
    big = resize_bilinear(img, (29, 37))
    for c in range(3):
        pil = np.asarray(Image.fromarray(img[..., c], mode="F").resize((37, 29), Image.BILINEAR))
        np.testing.assert_allclose(big[..., c], pil, atol=1e-3)


def tiny_voc(root, sizes, seed=0, void=True):
    """A VOC folder of random JPEGs and labels (0..20, with 255 bands if ``void``) of ``sizes``:
    (VOC12, names, label dir)."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True)
    names = []
    for i, (h, w) in enumerate(sizes):
        name = f"img{i}"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        label = rng.integers(0, 21, (h, w)).astype(np.uint8)
        if void:
            label[::5] = 255
        save_label_png(root / "labels" / f"{name}.png", label)
        names.append(name)
    return VOC12(root), names, root / "labels"


def test_training_crop_pads_with_the_mean_and_ignore(tmp_path):
    voc, names, labels = tiny_voc(tmp_path, [(20, 30), (50, 60)])
    cfg = DeepLabConfig(backbone="caffe", crop_size=40, train_scales=(1.0,))
    dataset = TrainDataset(voc, names, labels, cfg, seed=3)
    image = input_array(voc.load_image("img0"), cfg)
    label = np.asarray(Image.open(labels / "img0.png"))
    expected_img, expected_label = np.zeros((40, 40, 3), np.float32), np.full((40, 40), 255, np.uint8)
    expected_img[:20, :30], expected_label[:20, :30] = image, label  # padded bottom and right
    flips = set()
    for epoch in range(6):
        dataset.set_epoch(epoch)
        item = dataset[0]
        img, lab = item["img"].numpy().transpose(1, 2, 0), item["label"].numpy()
        assert item["img"].shape == (3, 40, 40) and item["label"].dtype == torch.int64
        flipped = not np.array_equal(lab, expected_label)
        flips.add(flipped)
        want_img, want_label = (expected_img[:, ::-1], expected_label[:, ::-1]) if flipped else (expected_img,
                                                                                                 expected_label)
        np.testing.assert_array_equal(lab, want_label)
        np.testing.assert_allclose(img, want_img, atol=1e-4)
    assert flips == {False, True}

    # larger than the crop: a window of the normalised image and its labels, at a random place
    big, big_label = input_array(voc.load_image("img1"), cfg), np.asarray(Image.open(labels / "img1.png"))
    offsets = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        item = dataset[1]
        img, lab = item["img"].numpy().transpose(1, 2, 0), item["label"].numpy()
        found = [(y, x) for y in range(11) for x in range(21) for f in (1, -1)
                 if np.array_equal(big_label[y:y + 40, x:x + 40][:, ::f], lab)
                 and np.allclose(big[y:y + 40, x:x + 40][:, ::f], img, atol=1e-4)]
        assert found
        offsets.update(found)
    assert len(offsets) > 1


def test_training_crop_rescales_and_is_deterministic(tmp_path):
    voc, names, labels = tiny_voc(tmp_path, [(20, 30), (30, 20)])
    cfg = DeepLabConfig(backbone="torchvision", crop_size=16, train_scales=(0.5, 1.5))
    dataset = TrainDataset(voc, names, labels, cfg, seed=0)
    a, b = dataset[0], dataset[0]
    assert torch.equal(a["img"], b["img"]) and torch.equal(a["label"], b["label"])
    dataset.set_epoch(1)
    c = dataset[0]
    assert not torch.equal(a["img"], c["img"])
    assert TrainDataset(voc, names, labels, cfg, seed=1)[0]["img"].shape == (3, 16, 16)
    # scale 0.5 of 20 x 30: 10 x 15 in the 16 x 16 crop, the rest padding
    small = DeepLabConfig(backbone="torchvision", crop_size=16, train_scales=(0.5,))
    item = TrainDataset(voc, names, labels, small)[0]
    lab = item["label"].numpy()
    assert (lab[10:] == 255).all()
    expected = np.asarray(Image.open(labels / "img0.png").resize((15, 10), Image.NEAREST))
    assert np.array_equal(lab[:10, :15], expected) or np.array_equal(lab[:10, 1:][:, ::-1], expected)


def test_label_of_another_size_is_an_error(tmp_path):
    voc, names, labels = tiny_voc(tmp_path, [(20, 30)])
    save_label_png(labels / "img0.png", np.zeros((20, 31), np.uint8))
    with pytest.raises(ValueError, match=r"img0.png: label map is 20x31, the image is 20x30"):
        TrainDataset(voc, names, labels, DeepLabConfig(crop_size=16))[0]
    save_label_png(labels / "img0.png", np.full((20, 30), 21, np.uint8))
    with pytest.raises(ValueError, match=r"img0.png: label 21 is neither a class"):
        TrainDataset(voc, names, labels, DeepLabConfig(crop_size=16))[0]


# ----------------------------------------------------------------------------- the script

def train_argv(demo_root, work, *extra, names=2):
    """The demo profile's network (torchvision ResNet-50) on a few demo images at crop 32."""
    listing = work.parent / f"{work.name}_list.txt"
    listing.write_text("\n".join((demo_root / "train.txt").read_text().split()[:names]) + "\n")
    return ["--profile", "demo", "--work_dir", str(work), "--voc12_root", str(demo_root / "VOC2012"),
            "--train_list", str(listing), "--label_dir", str(demo_root / "VOC2012/SegmentationClassAug"),
            "--crop_size", "32", "--train_scales", "0.25", "--batch_size", "2", "--num_workers", "0",
            "--quiet", "True", *extra]


def load_weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


class Interrupted(BaseException):
    """As a kill would: nothing after it runs (the scripts catch Exception)."""


def test_training_loss_falls_and_resume_gives_the_same_weights(demo_root, tmp_path, monkeypatch, capsys):
    """Random init (batch norm on batch statistics, a small rate for unnormalised features; the
    paper's MSC and ASPP multipliers, not the demo profile's):
    the loss falls; a run stopped after its saved state and resumed ends with the same weights."""
    flags = ["--init", "none", "--frozen_bn", "False", "--msc_scales", "0.5", "0.75", "--lr", "1e-6",
             "--aspp_weight_lr_mult", "10", "--aspp_bias_lr_mult", "20", "--iterations", "8", "--save_every", "4",
             "--lr_step", "2"]
    argv = lambda work: train_argv(demo_root, work, *flags)  # noqa: E731
    reference = tmp_path / "reference"
    deeplab_train.main(argv(reference))
    assert "deeplab train: 8 iterations in " in capsys.readouterr().out
    scalars = read_scalars(reference / "logs/deeplab")
    losses = [v for _, v in scalars["deeplab/loss"]]
    assert len(losses) == 8 and np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses
    lrs = [v for _, v in scalars["deeplab/lr_group2"]]
    assert lrs == pytest.approx([20e-6 * (1 - (t // 2 * 2) / 8) ** 0.9 for t in range(8)])

    killed = tmp_path / "killed"
    save = training.save_training_state

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise Interrupted

    monkeypatch.setattr(training, "save_training_state", save_then_stop)
    with pytest.raises(Interrupted):
        deeplab_train.main(argv(killed))
    monkeypatch.undo()
    assert not (killed / "sess/deeplab.pth").exists()
    assert load_weights(killed / "sess/deeplab.resume.pth")["step"] == 4
    with pytest.raises(SystemExit):  # a state of another run is refused
        deeplab_train.main(argv(killed) + ["--iterations", "9", "--resume", "True"])
    assert "made for another run (iterations 8 -> 9)" in capsys.readouterr().err
    deeplab_train.main(argv(killed) + ["--resume", "True"])
    assert "resuming after iteration 4 of 8" in capsys.readouterr().out
    a, b = load_weights(reference / "sess/deeplab.pth"), load_weights(killed / "sess/deeplab.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_script_writes_weights_that_load_deeplab_reads(demo_root, tmp_path, capsys):
    """The demo profile's default init (the CAM network's ResNet-50, batch norm frozen) and the
    caffe backbone from nothing, one iteration each."""
    work = tmp_path / "work"
    cam = CAMNet()
    with torch.no_grad():
        for m in cam.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(1.0, 2.0)
    save_checkpoint(cam, work / "sess/res50_cam.pth")
    deeplab_train.main(train_argv(demo_root, work, "--iterations", "1"))
    out = capsys.readouterr().out
    assert "deeplab train: 1 iterations in " in out and f"weights {work / 'sess/deeplab.pth'}" in out
    assert "deeplab train: class shares (%) of the labelled pixels of 2 training crops, labels / predictions: " \
           "background " in out
    model = load_deeplab(deeplab_v2("torchvision", 21, 50), work / "sess/deeplab.pth")
    state = model.state_dict()
    cam_state = cam.resnet50.state_dict()
    for key in ("bn1.running_mean", "layer4.2.bn3.running_var", "conv1.weight"):  # frozen / untrained
        assert torch.equal(state[f"base.model2.{key}"], cam_state[key]), key
    assert not torch.equal(state["base.model2.layer1.0.conv1.weight"], cam_state["layer1.0.conv1.weight"])

    caffe = tmp_path / "caffe"
    deeplab_train.main(train_argv(demo_root, caffe, "--backbone", "caffe", "--init", "none", "--iterations", "1",
                                  "--lr", "1e-6", "--frozen_bn", "False", "--check_crops", "0"))
    assert "class shares" not in capsys.readouterr().out
    keys = load_weights(caffe / "sess/deeplab.pth").keys()
    assert "base.layer1.conv1.conv.weight" in keys and "base.aspp.c3.bias" in keys
    load_deeplab(deeplab_v2("caffe", 21, 50), caffe / "sess/deeplab.pth")


@pytest.mark.parametrize("extra, message", [
    (["--backbone", "resnet"], "argument --backbone: 'resnet' is not one of caffe, torchvision"),
    (["--backbone", "caffe", "--init", "cam"], "--init cam initialises the torchvision backbone"),
    (["--label_dir", "/nonexistent/labels"], "label folder not found: /nonexistent/labels"),
    (["--batch_size", "3"], "the training list has 2 images, fewer than one batch of 3"),
    (["--init", "/nonexistent/init.pth"],
     "argument --init: '/nonexistent/init.pth' is not one of '', imagenet, cam, none, or the path of an existing file"),
])
def test_bad_settings_stop_with_one_line(demo_root, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as stop:
        deeplab_train.main(train_argv(demo_root, tmp_path / "work", *extra))
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "work/sess/deeplab.pth").exists()


def test_default_label_dir_and_paper_init(demo_root, tmp_path, capsys):
    argv = train_argv(demo_root, tmp_path / "work", "--profile", "paper", "--depth", "50")
    del argv[argv.index("--label_dir"):argv.index("--label_dir") + 2]  # '' = <work_dir>/GCN4DeepLab/CRF_Label
    with pytest.raises(SystemExit):
        deeplab_train.main(argv)
    assert f"label folder not found: {tmp_path / 'work/GCN4DeepLab/CRF_Label'}" in capsys.readouterr().err
    (tmp_path / "work/GCN4DeepLab").mkdir(parents=True)
    (tmp_path / "work/GCN4DeepLab/CRF_Label").symlink_to(demo_root / "VOC2012/SegmentationClassAug")
    with pytest.raises(SystemExit):
        deeplab_train.main(argv)
    assert f"{tmp_path / 'work/sess/deeplabv1_resnet101-coco.pth'}: the COCO-trained DeepLab-v1" in \
        capsys.readouterr().err


def test_ddp_with_accumulation_matches_one_process_with_the_global_batch(tmp_path):
    """2 processes x batch 1 x iter_size 2 = 1 process x batch 4: the same images per step and,
    every crop fully labelled, the same loss.  Batch norm frozen on statistics of random images
    (a random torchvision ResNet-50 given as ``--init PATH``).  Without oneDNN, whose kernels
    round a batch of 1 and of 4 differently (this random network's gradient is sensitive enough
    to make that a few per cent), the two steps agree to 0.2 %; a wrong loss scale or other
    images would be 50 % off."""
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50()
    for m in resnet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # the running statistics: the average over the batches
    with torch.no_grad():
        resnet(torch.randn(4, 3, 64, 64))
    init = tmp_path / "resnet50.pth"
    torch.save(resnet.state_dict(), init)
    voc, names, labels = tiny_voc(tmp_path / "voc", [(40, 44)] * 4, void=False)
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    argv = lambda work, batch, iter_size: [  # noqa: E731
        "--backbone", "torchvision", "--depth", "50", "--init", str(init), "--work_dir", str(work),
        "--voc12_root", str(voc.root), "--train_list", str(tmp_path / "list.txt"), "--label_dir", str(labels),
        "--crop_size", "32", "--train_scales", "1.0", "--batch_size", str(batch), "--iter_size", str(iter_size),
        "--iterations", "2", "--lr", "1e-3", "--num_workers", "0", "--quiet", "True"]
    onednn, torch.backends.mkldnn.enabled = torch.backends.mkldnn.enabled, False
    try:
        deeplab_train.main(argv(tmp_path / "one", 4, 1))
    finally:
        torch.backends.mkldnn.enabled = onednn
    without_onednn = tmp_path / "train_without_onednn.py"
    without_onednn.write_text("import runpy, torch\ntorch.backends.mkldnn.enabled = False\n"
                              "runpy.run_module('DeepLab.train', run_name='__main__')\n")
    torchrun(without_onednn, argv(tmp_path / "two", 1, 2))
    a, b = load_weights(tmp_path / "one/sess/deeplab.pth"), load_weights(tmp_path / "two/sess/deeplab.pth")
    torch.manual_seed(0)
    start = initialise(deeplab_v2("torchvision", 21, 50), str(init), "torchvision", 50).state_dict()
    assert a.keys() == b.keys() == start.keys()
    moved = 0
    for key in a:
        step_a, step_b = a[key] - start[key], b[key] - start[key]
        if not step_a.any():  # batch norm, the stem: untouched in both
            assert not step_b.any(), key
            continue
        moved += 1
        assert (step_b - step_a).norm() < 0.01 * step_a.norm(), key
    assert moved == 16 * 3 + 4 + 8  # the convolutions of the 16 blocks and 4 shortcuts, the ASPP weights and biases


# ---------------------------------------------------------------- the end-of-training class check


class ConstantNet(torch.nn.Module):
    """Predicts class ``winner`` everywhere at output stride 8 (C = 3); records its mode."""

    def __init__(self, winner):
        super().__init__()
        self.winner, self.modes = winner, []

    def forward(self, x):
        self.modes.append(self.training)
        logits = torch.zeros(len(x), 3, math.ceil(x.shape[2] / 8), math.ceil(x.shape[3] / 8))
        logits[:, self.winner] = 1.0
        return logits


def test_class_shares_count_the_labelled_pixels_of_the_first_crops():
    labels = [torch.zeros(16, 16, dtype=torch.int64) for _ in range(6)]
    labels[0][:8] = 1             # the output is 2x2: nearest picks rows/cols 0 and 8
    labels[1][:, :8] = 255        # half ignored
    labels[2][:] = 2
    labels[5][:] = 2              # beyond count: not counted
    dataset = [{"img": torch.zeros(3, 16, 16), "label": label} for label in labels]
    model = ConstantNet(winner=1).train()
    label_shares, prediction_shares = deeplab_train.class_shares(model, dataset, torch.device("cpu"), count=5,
                                                                 batch_size=2)
    # labelled output pixels: 4 + 2 + 4 + 4 + 4 = 18; class 1 in 2 of them, class 2 in 4
    np.testing.assert_allclose(label_shares, [12 / 18, 2 / 18, 4 / 18])
    np.testing.assert_allclose(prediction_shares, [0, 1, 0])
    assert model.modes == [False, False, False] and model.training  # evaluated, then back to training
    frozen = torch.nn.Sequential(torch.nn.BatchNorm2d(3), ConstantNet(winner=1)).train()
    freeze_batch_norm(frozen)
    deeplab_train.class_shares(frozen, dataset, torch.device("cpu"), count=1)
    assert frozen.training and frozen[1].training and not frozen[0].training  # frozen batch norm stays so


@pytest.mark.parametrize("labels, predictions, expected", [
    ([0.70, 0.20, 0.10], [0.68, 0.22, 0.10], []),                          # healthy
    ([0.17, 0.26, 0.57], [0.17, 0.26, 0.57], []),                          # a large class, as labelled
    ([0.70, 0.28, 0.02], [0.66, 0.29, 0.05], []),                          # 2.5x a tiny share: 3 points more
    ([0.70, 0.20, 0.10], [0.17, 0.26, 0.57], ["cat takes 57.0 % of the predictions on 16 training crops "
                                              "against 10.0 % of their labels"]),
    ([0.70, 0.20, 0.10], [0.97, 0.02, 0.01], ["the object classes take 3.0 % of the predictions on 16 "
                                              "training crops against 30.0 % of their labels"]),
])
def test_collapse_warnings(labels, predictions, expected):
    found = deeplab_train.collapse_warnings(np.array(labels), np.array(predictions), ("background", "bird", "cat"), 16)
    assert found == [f"deeplab train: {what}: the training may have collapsed (docs/usage.md)" for what in expected]


def test_check_classes_logs_the_shares_and_warns_of_a_collapse(capsys):
    label = torch.zeros(16, 16, dtype=torch.int64)
    label[:, 8:] = 2
    dataset = [{"img": torch.zeros(3, 16, 16), "label": label}] * 3
    with pytest.warns(UserWarning, match="the object classes take 0.0 % of the predictions on 3 training crops "
                                         "against 50.0 %") as caught:
        deeplab_train.check_classes(ConstantNet(winner=0), dataset, ("background", "bird", "cat"), torch.device("cpu"),
                                    16)
    assert len(caught) == 1  # background at exactly twice its share is not more than twice
    assert capsys.readouterr().out == ("deeplab train: class shares (%) of the labelled pixels of 3 training crops, "
                                       "labels / predictions: background 50.0 / 100.0, cat 50.0 / 0.0\n")
