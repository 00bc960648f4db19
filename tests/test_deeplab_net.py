"""DeepLab-v2's network and weights: the two code bases' key names, ASPP, MSC and strict loading
of trained checkpoints and of the initialisations (state dicts made here, nothing downloaded)."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

from DeepLab.config import PROFILES, DeepLabConfig
from DeepLab.net.deeplab_v2 import ASPP, BACKBONES, MSC, aspp_of, deeplab_v2
from DeepLab.net.weights import initialise, load_deeplab
from wsgcn.infra.config import parse_config


@pytest.fixture(scope="module")
def caffe():
    torch.manual_seed(0)
    return deeplab_v2("caffe", depth=50)


@pytest.fixture(scope="module")
def tv():
    torch.manual_seed(0)
    return deeplab_v2("torchvision", depth=50)


def test_key_names_are_the_code_bases(caffe, tv):
    keys = list(caffe.state_dict())
    assert keys[:2] == ["base.layer1.conv1.conv.weight", "base.layer1.conv1.bn.weight"]
    assert "base.layer5.block3.increase.bn.running_var" in keys and "base.aspp.c3.bias" in keys
    assert "base.layer3.block1.shortcut.conv.weight" in keys  # the downsampling block's projection
    keys = list(tv.state_dict())
    assert keys[0] == "base.model2.conv1.weight" and "base.model2.layer4.2.conv2.weight" in keys
    assert "base.model2.aspp.c0.weight" in keys and not any(".fc." in k or "avgpool" in k for k in keys)


def test_each_backbone_owns_its_trunk_head_and_input(caffe, tv):
    for name, model in (("caffe", caffe), ("torchvision", tv)):
        entry = BACKBONES[name]
        trunk = entry.trunk_of(model)
        prefix = f"base.{entry.trunk}." if entry.trunk else "base."
        # a whole checkpoint is the trunk's keys under base.<trunk>: the key format of the entry
        assert [prefix + k for k in trunk.state_dict()] == list(model.state_dict())
        assert aspp_of(model, name) is trunk.aspp and isinstance(trunk.aspp, ASPP)
    assert BACKBONES["caffe"].input.channel_order == "BGR" and BACKBONES["caffe"].input.pixel_scale == 255
    assert BACKBONES["torchvision"].input.channel_order == "RGB" and BACKBONES["torchvision"].input.pixel_scale == 1
    assert [n for n, b in BACKBONES.items() if b.torchvision_resnet] == ["torchvision"]


def test_dilations_and_strides(caffe, tv):
    layer4, layer5 = caffe.base.layer4, caffe.base.layer5
    assert layer4.block1.reduce.conv.stride == (1, 1) and layer4.block2.conv3x3.conv.dilation == (2, 2)
    assert layer5.block1.conv3x3.conv.dilation == (4, 4)  # every caffe block of the stage is dilated
    assert caffe.base.layer3.block1.reduce.conv.stride == (2, 2)  # the stride in the first 1x1 conv
    assert caffe.base.layer1.pool.ceil_mode
    l3, l4 = tv.base.model2.layer3, tv.base.model2.layer4
    assert l3[0].conv2.stride == (1, 1) and l3[0].conv2.dilation == (1, 1) and l3[1].conv2.dilation == (2, 2)
    assert l4[0].conv2.dilation == (1, 1) and l4[2].conv2.dilation == (4, 4) and l4[0].downsample[0].stride == (1, 1)


def test_aspp_sums_four_dilated_branches():
    torch.manual_seed(1)
    aspp = ASPP(8, 3)
    weights = torch.cat([c.weight.flatten() for c in aspp.children()])
    assert abs(weights.std().item() - 0.01) < 0.002 and all((c.bias == 0).all() for c in aspp.children())
    x = torch.randn(1, 8, 30, 30)
    expected = sum(F.conv2d(x, c.weight, c.bias, padding=r, dilation=r)
                   for c, r in zip(aspp.children(), (6, 12, 18, 24)))
    torch.testing.assert_close(aspp(x), expected)


def test_msc_is_the_max_over_scales_resized_to_scale_one():
    base = torch.nn.Conv2d(3, 2, 3, stride=8, padding=1)
    msc = MSC(base).eval()
    x = torch.randn(1, 3, 64, 72)
    outputs = [base(x)] + [base(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False))
                           for s in (0.5, 0.75)]
    resized = [outputs[0]] + [F.interpolate(o, size=outputs[0].shape[2:], mode="bilinear", align_corners=False)
                              for o in outputs[1:]]
    with torch.no_grad():
        torch.testing.assert_close(msc(x), torch.stack(resized).amax(0))
        train_outputs = msc.train()(x)
    assert [tuple(o.shape[2:]) for o in train_outputs] == [(8, 9), (4, 5), (6, 7), (8, 9)]


def test_msc_scales_none_is_the_image_at_scale_one_alone():
    cfg = parse_config(DeepLabConfig, PROFILES, ["--msc_scales", "none"])
    assert cfg.msc_scales == ()
    assert parse_config(DeepLabConfig, PROFILES, ["--msc_scales", "0.5", "0.75"]).msc_scales == (0.5, 0.75)
    base = torch.nn.Conv2d(3, 2, 3, stride=8, padding=1)
    msc, x = MSC(base, cfg.msc_scales), torch.randn(1, 3, 64, 72)
    with torch.no_grad():
        torch.testing.assert_close(msc.eval()(x), base(x))
        # kazuto1011's MSC without extra scales: scale 1 and the max over it, both in the loss
        outputs = msc.train()(x)
    assert len(outputs) == 2 and all(torch.equal(o, base(x)) for o in outputs)
    with pytest.raises(SystemExit):
        parse_config(DeepLabConfig, PROFILES, ["--msc_scales", "off"])


def test_trained_checkpoints_of_both_formats_load_strictly(caffe, tv, tmp_path):
    for model, backbone in ((caffe, "caffe"), (tv, "torchvision")):
        torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ddp.pth")  # DataParallel
        fresh = load_deeplab(deeplab_v2(backbone, depth=50), tmp_path / "ddp.pth")
        for key, value in model.state_dict().items():
            assert torch.equal(fresh.state_dict()[key], value), key
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    with pytest.raises(ValueError, match=r"tv.pth: does not fit MSC: \d+ missing .* unexpected \(e.g. \['base.model2"):
        load_deeplab(deeplab_v2("caffe", depth=50), tmp_path / "tv.pth")
    state = caffe.state_dict()
    state["base.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"1 unexpected \(e.g. \['base.extra.weight'\]\)"):
        load_deeplab(deeplab_v2("caffe", depth=50), tmp_path / "extra.pth")


def test_coco_deeplab_v1_init_drops_its_head_and_keeps_the_new_aspp(caffe, tmp_path):
    coco = {k[len("base."):]: v for k, v in caffe.state_dict().items() if ".aspp." not in f".{k}"}
    coco["fc.weight"], coco["fc.bias"] = torch.zeros(91, 2048, 1, 1), torch.zeros(91)  # DeepLab-v1's COCO head
    torch.save(coco, tmp_path / "deeplabv1_coco.pth")
    torch.manual_seed(5)
    model = deeplab_v2("caffe", depth=50)
    aspp_before = {k: v.clone() for k, v in aspp_of(model, "caffe").state_dict().items()}
    initialise(model, tmp_path / "deeplabv1_coco.pth", "caffe", 50)
    assert torch.equal(model.base.layer4.block2.conv3x3.conv.weight, caffe.base.layer4.block2.conv3x3.conv.weight)
    assert all(torch.equal(v, aspp_before[k]) for k, v in aspp_of(model, "caffe").state_dict().items())
    del coco["layer2.block1.reduce.conv.weight"]
    torch.save(coco, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"1 missing \(e.g. \['layer2.block1.reduce.conv.weight'\]\)"):
        initialise(deeplab_v2("caffe", depth=50), tmp_path / "partial.pth", "caffe", 50)


def test_torchvision_resnet_init_and_the_init_the_backbone_cannot_take(tmp_path):
    torch.manual_seed(2)
    resnet = torchvision.models.resnet50()
    torch.save(resnet.state_dict(), tmp_path / "resnet50.pth")
    model = initialise(deeplab_v2("torchvision", depth=50), tmp_path / "resnet50.pth", "torchvision", 50)
    assert torch.equal(model.base.model2.layer3[4].conv2.weight, resnet.layer3[4].conv2.weight)
    assert torch.equal(model.base.model2.bn1.running_mean, resnet.bn1.running_mean)
    with pytest.raises(ValueError, match="--init cam initialises the torchvision backbone, not --backbone caffe"):
        initialise(deeplab_v2("caffe", depth=50), "cam", "caffe", 50)
    with pytest.raises(ValueError, match="--backbone 'resnet'"):
        deeplab_v2("resnet")
