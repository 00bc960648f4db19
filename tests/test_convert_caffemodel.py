"""DeepLab/convert_caffemodel.py on caffemodels written here byte by byte in caffe.proto's wire format
(BVLC Caffe's field numbers; blobs in the BlobShape and the legacy num/channels/height/width
layouts, data packed and unpacked): kazuto1011's conversion value for value, a state dict this
project's networks load strictly, and one line with exit status 2 for a file that is not such a
caffemodel; and train.sh saying how to make the paper profile's initial weights."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from DeepLab import convert_caffemodel as converter
from DeepLab.net.deeplab_v2 import BLOCKS, deeplab_v2
from DeepLab.net.weights import initialise, load_deeplab

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- caffe.proto's wire format


def varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def varint_field(number, value):
    return varint(number << 3) + varint(value)  # wire type 0


def bytes_field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload  # wire type 2: length-delimited


def blob(values, shape, legacy=False, packed=True):
    """A BlobProto: ``shape`` as BlobShape (field 7, its dims packed) or as the legacy num (1),
    channels (2), height (3), width (4); ``data`` (field 5) packed or one fixed32 record a value."""
    values = np.asarray(values, dtype="<f4").ravel()
    if legacy:
        dims = (1,) * (4 - len(shape)) + tuple(shape)
        out = b"".join(varint_field(number, dim) for number, dim in zip((1, 2, 3, 4), dims))
    else:
        out = bytes_field(7, bytes_field(1, b"".join(varint(dim) for dim in shape)))
    if packed:
        return out + bytes_field(5, values.tobytes())
    records = np.empty(values.size, dtype=[("key", "u1"), ("value", "<f4")])
    records["key"], records["value"] = 5 << 3 | 5, values  # wire type 5: fixed32
    return out + records.tobytes()


def layer(name, kind, blobs=(), stride=None, pad=None, dilation=None, eps=None):
    """A LayerParameter: name (1), type (2), blobs (7), convolution_param (106: pad 3, stride 6,
    dilation 18), batch_norm_param (139: eps 3)."""
    out = bytes_field(1, name.encode()) + bytes_field(2, kind.encode()) + b"".join(bytes_field(7, b) for b in blobs)
    conv = b"".join(varint_field(number, value) for number, value in ((3, pad), (6, stride), (18, dilation)) if value)
    if conv:
        out += bytes_field(106, conv)
    if eps is not None:
        out += bytes_field(139, varint(3 << 3 | 5) + np.float32(eps).tobytes())
    return out


def v1_layer(name, type_number, blobs=()):
    """A V1LayerParameter: name (4), type (5, the LayerType enum), blobs (6)."""
    return bytes_field(4, name.encode()) + varint_field(5, type_number) + b"".join(bytes_field(6, b) for b in blobs)


def write_net(path, layers=(), v1_layers=()):
    """A NetParameter: its layers in ``layer`` (100), or legacy ones in ``layers`` (2)."""
    path.write_bytes(b"".join(bytes_field(100, one) for one in layers)
                     + b"".join(bytes_field(2, one) for one in v1_layers))
    return path


# ----------------------------------------------------------------------------- the released models' layouts


def values(seed, n, positive=False):
    """Deterministic float32 blob values."""
    x = np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
    return np.abs(x) + np.float32(0.5) if positive else x


def factor(seed):
    return np.float32(0.999 + 0.013 * (seed % 7))  # scale factors whose quotients round


def conv_bn(name, bn, scale, cin, cout, k, seed, stride=1, pad=0, dilation=1):
    """A convolution without bias, its BatchNorm (mean, variance, factor) and Scale, as (name, type,
    blobs) layers; ``seed`` gives every blob's values (blob i of the layer: seed * 10 + i)."""
    legacy = seed % 2 == 1  # the two blob layouts and the two encodings, taken in turn
    shapes = ((cout, cin, k, k),)
    return [
        layer(name, "Convolution", [blob(values(seed * 10, cout * cin * k * k), shapes[0], legacy, seed % 3 != 0)],
              stride=stride if stride != 1 else None, pad=pad, dilation=dilation if dilation != 1 else None),
        layer(bn, "BatchNorm", [blob(values(seed * 10 + 1, cout), (cout,), legacy, True),
                                blob(values(seed * 10 + 2, cout, positive=True), (cout,), legacy, False),
                                blob([factor(seed)], (1,), legacy)]),
        layer(scale, "Scale", [blob(values(seed * 10 + 3, cout, positive=True), (cout,), legacy),
                               blob(values(seed * 10 + 4, cout), (cout,), not legacy)]),
        layer(name + "_relu", "ReLU"),
    ]


def block_names(stage, count):
    """The MSRA ResNet's block letters: a, b, c (stages 2 and 5 of ResNet-101), else a, b1, b2, ..."""
    return ["a", "b", "c"] if count == 3 else ["a"] + [f"b{i}" for i in range(1, count)]


def resnet101_layers():
    """[(layer bytes, seed)] of the released DeepLab ResNet-101 trunk, in the files' order, and
    {layer name: seed} for the checks."""
    seeds, layers = {}, []

    def add(name, *args, **kwargs):
        seeds[name] = len(seeds) + 1
        layers.extend(conv_bn(name, *args, seed=seeds[name], **kwargs))

    add("conv1", "bn_conv1", "scale_conv1", 3, 64, 7, stride=2, pad=3)
    layers.append(layer("pool1", "Pooling"))
    cin = 64
    for stage, count, width, stride, dilation in zip((2, 3, 4, 5), BLOCKS[101], (256, 512, 1024, 2048),
                                                     (1, 2, 1, 1), (1, 1, 2, 4)):
        for i, letter in enumerate(block_names(stage, count)):
            x, first = f"{stage}{letter}", i == 0
            if first:
                add(f"res{x}_branch1", f"bn{x}_branch1", f"scale{x}_branch1", cin, width, 1, stride=stride)
            mid = width // 4
            add(f"res{x}_branch2a", f"bn{x}_branch2a", f"scale{x}_branch2a", cin if first else width, mid, 1,
                stride=stride if first else 1)
            add(f"res{x}_branch2b", f"bn{x}_branch2b", f"scale{x}_branch2b", mid, mid, 3, pad=dilation,
                dilation=dilation)
            add(f"res{x}_branch2c", f"bn{x}_branch2c", f"scale{x}_branch2c", mid, width, 1)
            layers.append(layer(f"res{x}", "Eltwise"))
        cin = width
    return layers, seeds


def head(name, classes, k, seed, rate=None):
    return layer(name, "Convolution", [blob(values(seed, classes * 2048 * k * k), (classes, 2048, k, k)),
                                       blob(values(seed + 1, classes), (classes,), legacy=True, packed=False)],
                 pad=rate, dilation=rate)


@pytest.fixture(scope="module")
def trunk():
    return resnet101_layers()


def released_file(path, kind, trunk):
    """init.caffemodel's layout (coco: the trunk and a 1x1 91-class fc1_coco) or train2_iter_20000's
    (voc12: the trunk, fc1_voc12_c0..c3, then the res075 and res05 branches, here with blobs of no
    fitting shape, which the conversion must pass over)."""
    layers = [layer("data", "ImageSegData")] + trunk[0]
    if kind == "coco":
        return write_net(path, layers + [head("fc1_coco", 91, 1, 7001), layer("loss", "SoftmaxWithLoss")])
    layers += [head(f"fc1_voc12_c{i}", 21, 3, 8001 + 10 * i, rate) for i, rate in enumerate((6, 12, 18, 24))]
    for branch in ("res075", "res05"):
        layers += [layer(f"{name}_{branch}", type_, [blob([7.0], (1,))]) for name, type_ in
                   (("conv1", "Convolution"), ("bn_conv1", "BatchNorm"), ("scale_conv1", "Scale"),
                    ("fc1_voc12_c0", "Convolution"))]
    return write_net(path, layers + [layer("fc_fusion", "Eltwise")])


@pytest.mark.parametrize("kind", ["coco", "voc12"])
def test_a_released_layout_converts_value_for_value_and_loads_strictly(kind, trunk, tmp_path, capsys):
    source, out = released_file(tmp_path / f"{kind}.caffemodel", kind, trunk), tmp_path / "sess" / f"{kind}.pth"
    assert converter.main(["--caffemodel", str(source), "--out", str(out)]) == 0
    assert f"({kind}) to {out}" in capsys.readouterr().out
    state = torch.load(out, weights_only=True)
    prefix = "base." if kind == "voc12" else ""
    seeds = trunk[1]
    # a convolution as it is, BatchNorm / its scale factor (float32), Scale as the affine
    seed = seeds["res4b22_branch2b"]
    assert torch.equal(state[prefix + "layer4.block23.conv3x3.conv.weight"],
                       torch.from_numpy(values(seed * 10, 256 * 256 * 9)).view(256, 256, 3, 3))
    seed, bn = seeds["res3a_branch1"], prefix + "layer3.block1.shortcut.bn."
    assert torch.equal(state[bn + "running_mean"], torch.from_numpy(values(seed * 10 + 1, 512) / factor(seed)))
    assert torch.equal(state[bn + "running_var"], torch.from_numpy(values(seed * 10 + 2, 512, True) / factor(seed)))
    assert torch.equal(state[bn + "weight"], torch.from_numpy(values(seed * 10 + 3, 512, True)))
    assert torch.equal(state[bn + "bias"], torch.from_numpy(values(seed * 10 + 4, 512)))
    assert state[bn + "num_batches_tracked"].dtype == torch.int64 and state[bn + "num_batches_tracked"].item() == 0
    assert {v.dtype for v in state.values()} == {torch.float32, torch.int64}
    model = deeplab_v2("caffe", 21, 101)
    if kind == "coco":  # the 91-class head is kept; --init drops it and loads the rest strictly
        assert torch.equal(state["fc.weight"], torch.from_numpy(values(7001, 91 * 2048)).view(91, 2048, 1, 1))
        assert len(state) == len(model.state_dict()) - 8 + 2
        initialise(model, str(out), "caffe", 101)
    else:  # the ASPP head from fc1_voc12_c0..c3; the res075/res05 copies passed over
        assert torch.equal(state["base.aspp.c3.bias"], torch.from_numpy(values(8032, 21)))
        assert set(state) == set(model.state_dict())
        load_deeplab(model, out)
    assert torch.equal(model.base.layer3.block1.shortcut.bn.running_var, state[bn + "running_var"])


# ----------------------------------------------------------------------------- the pieces, on small files


@pytest.mark.parametrize("layer_name, module", [
    ("conv1", "layer1.conv1.conv"), ("bn_conv1", "layer1.conv1.bn"), ("res2c_branch2c", "layer2.block3.increase.conv"),
    ("bn3b3_branch2b", "layer3.block4.conv3x3.bn"), ("res4b22_branch2a", "layer4.block23.reduce.conv"),
    ("bn5a_branch1", "layer5.block1.shortcut.bn"), ("fc1_voc12_c2", "aspp.c2"), ("fc1_coco", "fc"),
    ("scale_conv1", None), ("res6a_branch1", None), ("res2a", None),
])
def test_layer_names_map_to_kazuto1011s_modules(layer_name, module):
    assert converter.module_name(layer_name) == module


def test_both_blob_layouts_and_data_encodings_read_alike(tmp_path):
    data = values(1, 24)
    blobs = [blob(data, (2, 3, 2, 2), legacy, packed) for legacy in (False, True) for packed in (True, False)]
    path = write_net(tmp_path / "blobs.caffemodel", [layer("conv1", "Convolution", blobs)],
                     [v1_layer("conv1", 4, [blob(data, (2, 3, 2, 2), True, False)])])
    layers = converter.read_caffemodel(path)
    assert [(one.name, one.type, len(one.blobs)) for one in layers] == [("conv1", "Convolution", 4),
                                                                        ("conv1", "Convolution", 1)]
    for b in layers[0].blobs + layers[1].blobs:
        state, _ = converter.convert_layers([converter.CaffeLayer("conv1", "Convolution", [b])])
        value, shape = state["layer1.conv1.conv.weight"]
        assert shape == (2, 3, 2, 2) and torch.equal(value, torch.from_numpy(data))


def small_net(path, extra=()):
    """The released conventions on blobs of a few values: a BatchNorm + Scale pair, the MSC
    model's shared branches, an ASPP branch."""
    mean, var, fac = values(1, 4), values(2, 4, positive=True), np.float32(1.7)
    return write_net(path, [
        layer("conv1", "Convolution", [blob(values(3, 4 * 3), (4, 3, 1, 1), packed=False)], pad=3),  # stride 1
        layer("bn_conv1", "BatchNorm", [blob(mean, (4,), True), blob(var, (4,)), blob([fac], (1,), True, False)]),
        layer("scale_conv1", "Scale", [blob(values(4, 4), (4,)), blob(values(5, 4), (4,))]),
        layer("conv1_relu", "ReLU"),
        layer("conv1_res075", "Convolution", [blob([9.0], (1,))]),
        layer("bn_conv1_res05", "BatchNorm", [blob([9.0], (1,))]),
        layer("fc1_voc12_c0", "Convolution", [blob(values(6, 6), (2, 3, 1, 1)), blob(values(7, 2), (2,))], pad=6,
              dilation=6),
        *extra]), (mean, var, fac)


def test_the_conversion_follows_the_released_models_conventions(tmp_path):
    path, (mean, var, fac) = small_net(tmp_path / "small.caffemodel")
    layers = converter.read_caffemodel(path)
    assert converter.guess_kind(layers) == "voc12" and converter.guess_kind(layers[:4]) == "coco"
    state, modules = converter.convert_layers(layers, "base.")
    bn = "base.layer1.conv1.bn."
    assert list(state) == ["base.layer1.conv1.conv.weight", bn + "running_mean", bn + "running_var",
                           bn + "num_batches_tracked", bn + "weight", bn + "bias", "base.aspp.c0.weight",
                           "base.aspp.c0.bias"]
    assert torch.equal(state[bn + "running_mean"][0], torch.from_numpy(mean / fac))
    assert torch.equal(state[bn + "running_var"][0], torch.from_numpy(var / fac))
    assert state[bn + "running_mean"][1] == (1, 1, 1, 4)  # the legacy layout, as written
    assert torch.equal(state[bn + "weight"][0], torch.from_numpy(values(4, 4)))
    assert torch.equal(state["base.aspp.c0.bias"][0], torch.from_numpy(values(7, 2)))
    assert list(modules) == ["base.layer1.conv1.conv", "base.layer1.conv1.bn", "base.aspp.c0"]


def test_a_batch_norm_that_divides_by_zero_is_refused():
    network = torch.nn.Sequential(torch.nn.BatchNorm2d(2))
    state = {k: (torch.ones(v.shape), None) for k, v in network.state_dict().items()}
    state["0.running_var"] = (torch.tensor([1.0, float("inf")]), (2,))
    with pytest.raises(ValueError, match=r"1 tensors hold NaN or Inf .*0.running_var"):
        converter.check_against(state, {}, network)


# ----------------------------------------------------------------------------- a bad file: one line, exit 2


def refused(argv, capsys):
    assert converter.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("convert_caffemodel.py: error: "), err
    return err


def small_file_with(tmp_path, *extra):
    return str(small_net(tmp_path / "model.caffemodel", extra)[0])


@pytest.mark.parametrize("content, words", [
    (b"name: 'DeepLab'\nlayer { name: 'conv1' }\n", "not a caffemodel"),  # a prototxt, the text format
    (np.random.default_rng(0).bytes(4096), "not a caffemodel"),
    (b"", "holds no layers"),
])
def test_a_file_that_is_not_a_caffemodel(content, words, tmp_path, capsys):
    (tmp_path / "x.caffemodel").write_bytes(content)
    err = refused(["--caffemodel", str(tmp_path / "x.caffemodel"), "--out", str(tmp_path / "x.pth")], capsys)
    assert f"{tmp_path / 'x.caffemodel'}: " in err and words in err and not (tmp_path / "x.pth").exists()


def test_a_truncated_file_and_a_missing_one(tmp_path, capsys):
    whole = Path(small_file_with(tmp_path)).read_bytes()
    (tmp_path / "cut.caffemodel").write_bytes(whole[: len(whole) // 2])
    err = refused(["--caffemodel", str(tmp_path / "cut.caffemodel"), "--out", str(tmp_path / "x.pth")], capsys)
    assert "or a truncated one" in err
    err = refused(["--caffemodel", str(tmp_path / "none.caffemodel"), "--out", str(tmp_path / "x.pth")], capsys)
    assert f"caffemodel not found: {tmp_path / 'none.caffemodel'}" in err


@pytest.mark.parametrize("extra, kind, words", [
    ((), "voc12", ["624 tensors missing (e.g. base.layer2.block1.reduce.conv.weight", "blobs of another shape (e.g. "
                   "base.layer1.conv1.conv.weight (4, 3, 1, 1) for (64, 3, 7, 7)", "layers of other settings (e.g. "
                   "base.layer1.conv1.conv: stride (1, 1) vs (2, 2)"]),
    ((), "coco", ["not the coco DeepLab ResNet-101", "tensors it lacks (e.g. aspp.c0.weight"]),
    ((layer("res6a_branch1", "Convolution", [blob([1.0], (1,))]),), "", ["'res6a_branch1': no module of the network"]),
    ((layer("scale_extra", "Scale", [blob([1.0], (1,)), blob([1.0], (1,))]),), "", ["Scale layer 'scale_extra': not "
                                                                                     "a batch norm's weight and bias"]),
])
def test_another_architecture(extra, kind, words, tmp_path, capsys):
    err = refused(["--caffemodel", small_file_with(tmp_path, *extra), "--out", str(tmp_path / "x.pth"),
                   "--kind", kind], capsys)
    assert all(w in err for w in words), err
    assert not (tmp_path / "x.pth").exists()


# ----------------------------------------------------------------------------- train.sh


def train_sh(tmp_path, *argv, **env):
    """train.sh with a stand-in interpreter that writes nothing (every step 'fails some images')."""
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/bash\necho ran >> {tmp_path / 'ran'}\nexit 1\n")
    fake.chmod(0o755)
    return subprocess.run(["bash", str(ROOT / "train.sh"), *argv], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHON=str(fake), WORK_DIR=str(tmp_path / "work"), **env))


@pytest.mark.parametrize("stage, deeplab_args", [("2", ""), ("all", ""), ("2", "--profile imagenet --profile paper")])
def test_train_sh_says_how_to_make_the_paper_profiles_init(stage, deeplab_args, tmp_path):
    done = train_sh(tmp_path, "--stage", stage, DEEPLAB_ARGS=deeplab_args)
    init = tmp_path / "work/sess/deeplabv1_resnet101-coco.pth"
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{init} is missing" in done.stderr and "prototxt_and_model.zip" in done.stderr
    assert f"DeepLab/convert_caffemodel.py --caffemodel .../init.caffemodel --out {init}" in done.stderr
    assert not (tmp_path / "ran").exists()  # said before any step


@pytest.mark.parametrize("argv, env", [
    (["--stage", "1"], {}), (["--stage", "all", "--profile", "demo"], {}),
    (["--stage", "2"], {"DEEPLAB_ARGS": "--init none"}), (["--stage", "2"], {"INIT_PRESENT": "1"}),
    (["--stage", "all"], {"DEEPLAB_ARGS": "--profile imagenet"}),  # the README's ImageNet row
    (["--stage", "2"], {"DEEPLAB_ARGS": "--backbone torchvision --profile=imagenet"}),
])
def test_train_sh_asks_only_for_the_init_it_will_use(argv, env, tmp_path):
    if env.pop("INIT_PRESENT", None):
        (tmp_path / "work/sess").mkdir(parents=True)
        (tmp_path / "work/sess/deeplabv1_resnet101-coco.pth").write_bytes(b"")
    done = train_sh(tmp_path, *argv, **env)
    assert done.returncode == 3 and "convert_caffemodel" not in done.stderr, done.stderr  # the first step ran
    assert (tmp_path / "ran").exists()


def test_help_lists_the_flags_and_both_files_are_required(capsys):
    with pytest.raises(SystemExit) as stop:
        converter.main(["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and all(f"--{flag}" in out for flag in ("caffemodel", "out", "kind"))
    assert "--caffemodel and --out are required" in refused(["--caffemodel", "x.caffemodel"], capsys)
    with pytest.raises(SystemExit) as stop:
        converter.main(["--caffemodel", "x", "--out", "y", "--kind", "ade20k"])
    assert stop.value.code == 2 and "argument --kind: 'ade20k' is not one of" in capsys.readouterr().err
