r"""Convert the DeepLab authors' released Caffe ResNet-101 models into this project's weights files.

    python DeepLab/convert_caffemodel.py --caffemodel init.caffemodel --out Data/sess/deeplabv1_resnet101-coco.pth
    python DeepLab/convert_caffemodel.py --caffemodel train2_iter_20000.caffemodel --out deeplab_voc12.pth

``prototxt_and_model.zip`` (DeepLab-v2 ResNet-101) holds three models:

- ``init.caffemodel``, the COCO-trained DeepLab-v1 that Stage II's ``paper`` profile starts from
  (``--kind coco``): the ResNet and a 1x1 91-class ``fc`` head.  Written as kazuto1011's
  ``deeplabv1_resnet101-coco.pth``: keys ``layer1.conv1.conv.weight``, ..., ``fc.weight``; the
  training's ``--init`` loads the ResNet and drops ``fc``.
- ``train_iter_20000.caffemodel`` and ``train2_iter_20000.caffemodel``, the VOC-trained
  DeepLab-v2 with its multi-scale branches (``--kind voc12``): keys ``base.layer1...``,
  ``base.aspp.c0..c3`` (``fc1_*_c0..c3``), 21 classes; ``infer.py --weights`` loads it.

A ``.caffemodel`` is a protobuf ``NetParameter``.  It is read with the message classes built below
from the fields of BVLC Caffe's ``caffe.proto`` that the conversion needs, under the same field
numbers; nothing of Caffe is needed.  The conversion is kazuto1011/deeplab-pytorch's: BatchNorm's
mean and variance divided by its scale-factor blob, the following Scale layer as the batch norm's
weight and bias, the multi-scale model's ``res075``/``res05`` copies of the shared weights
skipped; the file written holds the same keys, in the same order, with the same dtypes and values
(docs/parity.md).  Every blob's shape and every convolution's stride, padding and
dilation are checked against this project's ``--backbone caffe`` network before anything is
written; a file that is not such a caffemodel is one line (exit status 2).
"""
import math
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory
from torch import nn

from DeepLab.net.deeplab_v2 import caffe_deeplab_v2, deeplab_v2
from wsgcn.infra.config import field
from wsgcn.infra.io import save_torch
from wsgcn.infra.scripts import tool_main

DEPTH = 101  # the released models are ResNet-101
CLASSES = {"coco": 91, "voc12": 21}  # the classifier of each kind
SHARED_BRANCHES = ("res075", "res05")  # the MSC model's copies of the shared weights, at scales 0.75 and 0.5
V1_TYPES = {4: "Convolution", 14: "InnerProduct", 17: "Pooling"}  # V1LayerParameter.LayerType, those read here


# ----------------------------------------------------------------------------- reading the file

# caffe.proto's messages, reduced to the fields read here: (name, number, label, type, message type).
_T = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _T.LABEL_OPTIONAL, _T.LABEL_REPEATED
CAFFE_FIELDS = {
    "BlobShape": [("dim", 1, _REPEATED, _T.TYPE_INT64, None)],
    "BlobProto": [("shape", 7, _OPTIONAL, _T.TYPE_MESSAGE, "BlobShape"), ("data", 5, _REPEATED, _T.TYPE_FLOAT, None),
                  ("num", 1, _OPTIONAL, _T.TYPE_INT32, None), ("channels", 2, _OPTIONAL, _T.TYPE_INT32, None),
                  ("height", 3, _OPTIONAL, _T.TYPE_INT32, None), ("width", 4, _OPTIONAL, _T.TYPE_INT32, None)],
    "ConvolutionParameter": [("pad", 3, _REPEATED, _T.TYPE_UINT32, None),
                             ("kernel_size", 4, _REPEATED, _T.TYPE_UINT32, None),
                             ("stride", 6, _REPEATED, _T.TYPE_UINT32, None),
                             ("dilation", 18, _REPEATED, _T.TYPE_UINT32, None)],
    "BatchNormParameter": [("eps", 3, _OPTIONAL, _T.TYPE_FLOAT, None)],
    "LayerParameter": [("name", 1, _OPTIONAL, _T.TYPE_STRING, None), ("type", 2, _OPTIONAL, _T.TYPE_STRING, None),
                       ("blobs", 7, _REPEATED, _T.TYPE_MESSAGE, "BlobProto"),
                       ("convolution_param", 106, _OPTIONAL, _T.TYPE_MESSAGE, "ConvolutionParameter"),
                       ("batch_norm_param", 139, _OPTIONAL, _T.TYPE_MESSAGE, "BatchNormParameter")],
    # the legacy layer list; its type is an enum there, read as its number (V1_TYPES)
    "V1LayerParameter": [("name", 4, _OPTIONAL, _T.TYPE_STRING, None), ("type", 5, _OPTIONAL, _T.TYPE_INT32, None),
                         ("blobs", 6, _REPEATED, _T.TYPE_MESSAGE, "BlobProto"),
                         ("convolution_param", 10, _OPTIONAL, _T.TYPE_MESSAGE, "ConvolutionParameter")],
    "NetParameter": [("name", 1, _OPTIONAL, _T.TYPE_STRING, None),
                     ("layer", 100, _REPEATED, _T.TYPE_MESSAGE, "LayerParameter"),
                     ("layers", 2, _REPEATED, _T.TYPE_MESSAGE, "V1LayerParameter")],
}


@cache
def net_parameter_class():
    """The message class of caffe.proto's ``NetParameter`` (the fields of :data:`CAFFE_FIELDS`),
    in a descriptor pool of its own (proto2, package ``caffe``)."""
    proto = descriptor_pb2.FileDescriptorProto(name="wsgcn_caffe_subset.proto", package="caffe", syntax="proto2")
    for name, fields in CAFFE_FIELDS.items():
        msg = proto.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            added = msg.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                added.type_name = f".caffe.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe.NetParameter"))


@dataclass
class CaffeLayer:
    """One layer of a caffemodel: its name, type (``Convolution``, ``BatchNorm``, ...), parameter
    blobs (BlobProto messages) and, where it has them, its convolution and batch-norm settings."""
    name: str
    type: str
    blobs: list
    convolution: object = None
    batch_norm: object = None


def read_caffemodel(path):
    """The layers of the caffemodel ``path``, in the file's order (the ``layer`` list, or the legacy
    ``layers`` list of V1LayerParameter).  A file protobuf cannot parse, or one without layers,
    is a ValueError naming it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"caffemodel not found: {path}")
    try:
        net = net_parameter_class().FromString(Path(path).read_bytes())
    except message.DecodeError as e:
        raise ValueError(f"{path}: not a caffemodel (a protobuf NetParameter), or a truncated one: {e}") from None
    layers = [CaffeLayer(layer.name, layer.type, list(layer.blobs),
                         layer.convolution_param if layer.HasField("convolution_param") else None,
                         layer.batch_norm_param if layer.HasField("batch_norm_param") else None)
              for layer in net.layer]
    layers += [CaffeLayer(layer.name, V1_TYPES.get(layer.type, f"V1 type {layer.type}"), list(layer.blobs),
                          layer.convolution_param if layer.HasField("convolution_param") else None)
               for layer in net.layers]
    if not layers:
        raise ValueError(f"{path}: holds no layers: not a caffemodel (a protobuf NetParameter)")
    return layers


def blob_shape(blob):
    """A BlobProto's shape: the legacy (num, channels, height, width) when any of those is set (as
    Caffe reads it), else ``shape.dim``."""
    if any(blob.HasField(axis) for axis in ("num", "channels", "height", "width")):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(blob.shape.dim)


def blob_values(blob):
    """A BlobProto's ``data``: a flat float32 array."""
    return np.asarray(blob.data, dtype=np.float32)


# ----------------------------------------------------------------------------- layer names -> keys

_BLOCK = re.compile(r"(res|bn)([2-5])([a-z])(\d*)_branch(1|2a|2b|2c)")
_BRANCHES = {"1": "shortcut", "2a": "reduce", "2b": "conv3x3", "2c": "increase"}
_ASPP = re.compile(r"fc[^_]*_[^_]+_(c\d+)")  # fc1_voc12_c0 -> aspp.c0
_CLASSIFIER = re.compile(r"fc[^_]*(_[^_]+)?")  # fc1_coco, fc8 -> fc


def module_name(layer_name):
    """The module of kazuto1011's DeepLab that a Caffe layer feeds, without ``base.``: ``conv1``
    -> ``layer1.conv1.conv``, ``bn_conv1`` -> ``layer1.conv1.bn``, ``res4b22_branch2a`` ->
    ``layer4.block23.reduce.conv``, ``bn3a_branch1`` -> ``layer3.block1.shortcut.bn``,
    ``fc1_voc12_c2`` -> ``aspp.c2``, ``fc1_coco`` -> ``fc``; None for a name of no module."""
    if layer_name in ("conv1", "bn_conv1"):
        return "layer1.conv1." + ("conv" if layer_name == "conv1" else "bn")
    match = _BLOCK.fullmatch(layer_name)
    if match:
        kind, stage, letter, number, branch = match.groups()
        block = int(number) + 1 if number else ord(letter) - ord("a") + 1  # 4b22 -> block 23, 2c -> block 3
        return f"layer{stage}.block{block}.{_BRANCHES[branch]}." + ("conv" if kind == "res" else "bn")
    match = _ASPP.fullmatch(layer_name)
    if match:
        return f"aspp.{match.group(1)}"
    return "fc" if _CLASSIFIER.fullmatch(layer_name) else None


def guess_kind(layers):
    """``voc12`` when the file has ASPP layers (``fc1_*_c0``...), else ``coco``."""
    names = (module_name(layer.name) or "" for layer in layers if not is_shared_branch(layer.name))
    return "voc12" if any(name.startswith("aspp.") for name in names) else "coco"


def is_shared_branch(layer_name):
    return any(branch in layer_name for branch in SHARED_BRANCHES)


# ----------------------------------------------------------------------------- the conversion

class NotThisNetwork(ValueError):
    """The caffemodel is not the network it should be (a layer, blob or setting that does not fit)."""


def convert_layers(layers, prefix=""):
    """The state dict of ``layers``: ``{prefix + key: (tensor, blob shape or None)}`` in the file's
    order, kazuto1011's keys, values and dtypes: convolution weights and biases and Scale's weight
    and bias as they are (float32), BatchNorm's mean and variance divided by its scale factor in
    float32, its ``num_batches_tracked`` 0 (int64).  Also returns ``{module name: layer}`` of the
    convolutions and batch norms, for their settings.  Layers of other types (ReLU, Eltwise,
    Pooling, ...) hold no parameters here and are passed over, as are the ``res075``/``res05``
    branches.  A parameter layer of no known module, a BatchNorm or Scale without its blobs, or a
    Scale not right after a BatchNorm is a :class:`NotThisNetwork`."""
    state, modules = OrderedDict(), {}
    previous, batch_norm = None, None
    for layer in layers:
        if is_shared_branch(layer.name):
            continue
        kind = layer.type
        if kind in ("Convolution", "InnerProduct", "BatchNorm"):
            name = module_name(layer.name)
            if name is None or prefix + name in modules:
                what = "a second layer for" if name else "no module of the network for"
                raise NotThisNetwork(f"{kind} layer {layer.name!r}: {what} it")
            modules[prefix + name] = layer
        if kind in ("Convolution", "InnerProduct"):
            if len(layer.blobs) not in (1, 2):
                raise NotThisNetwork(f"{kind} layer {layer.name!r} has {len(layer.blobs)} blobs, not 1 or 2")
            for param, blob in zip(("weight", "bias"), layer.blobs):
                state[f"{prefix}{name}.{param}"] = (torch.from_numpy(blob_values(blob)), blob_shape(blob))
        elif kind == "BatchNorm":
            if len(layer.blobs) != 3:
                raise NotThisNetwork(f"BatchNorm layer {layer.name!r} has {len(layer.blobs)} blobs, not 3 "
                                     f"(mean, variance, scale factor)")
            factor = blob_values(layer.blobs[2])
            if factor.size != 1:
                raise NotThisNetwork(f"BatchNorm layer {layer.name!r}: a scale factor of {factor.size} values, not 1")
            for param, blob in zip(("running_mean", "running_var"), layer.blobs):
                state[f"{prefix}{name}.{param}"] = (torch.from_numpy(blob_values(blob) / factor[0]), blob_shape(blob))
            state[f"{prefix}{name}.num_batches_tracked"] = (torch.tensor(0, dtype=torch.int64), None)
            batch_norm = name
        elif kind == "Scale":
            if previous != "BatchNorm" or len(layer.blobs) != 2:
                raise NotThisNetwork(f"Scale layer {layer.name!r}: not a batch norm's weight and bias "
                                     f"(it follows a {previous} layer and has {len(layer.blobs)} blobs)")
            for param, blob in zip(("weight", "bias"), layer.blobs):
                state[f"{prefix}{batch_norm}.{param}"] = (torch.from_numpy(blob_values(blob)), blob_shape(blob))
        previous = kind
    return state, modules


def reference_network(kind):
    """The network a ``kind`` of caffemodel is converted for, on the meta device (shapes only):
    DeepLab-v1 (this project's caffe backbone with a 1x1 91-class ``fc`` for the ASPP head) for
    coco, the MSC DeepLab-v2 of 21 classes for voc12.  Also returns the key prefix."""
    with torch.device("meta"):
        if kind == "voc12":
            return deeplab_v2("caffe", CLASSES[kind], DEPTH), "base."
        network = caffe_deeplab_v2(CLASSES[kind], DEPTH)
        del network.aspp
        network.add_module("fc", nn.Conv2d(2048, CLASSES[kind], 1))
        return network, ""


def fits(shape, expected):
    """Whether a blob of ``shape`` holds a tensor of shape ``expected``: the same shape, up to
    leading 1s (a legacy 4-D blob: (1, 1, 1, C) for a vector), or an InnerProduct's (out, in) for a
    1x1 convolution."""
    def trimmed(dims):
        dims = tuple(dims)
        while dims and dims[0] == 1:
            dims = dims[1:]
        return dims
    expected = tuple(expected)
    return trimmed(shape) == trimmed(expected) or (tuple(shape) == expected[:2] and expected[2:] == (1, 1))


def _pair(values, default):
    """A repeated spatial setting of caffe.proto (none: the default; one value: both axes; two:
    height and width) as (height, width)."""
    values = tuple(values) or (default,)
    return values * 2 if len(values) == 1 else values


def settings_mismatch(name, layer, module):
    """What differs between a Caffe layer's settings and its module's (stride, padding and dilation
    of a convolution, eps of a batch norm), or ''."""
    if isinstance(module, nn.Conv2d) and layer.convolution is not None:
        param = layer.convolution
        caffe = {"stride": _pair(param.stride, 1), "padding": _pair(param.pad, 0), "dilation": _pair(param.dilation, 1)}
        wrong = [f"{k} {v} vs {getattr(module, k)}" for k, v in caffe.items() if v != getattr(module, k)]
        return f"{name}: {', '.join(wrong)}" if wrong else ""
    if isinstance(module, nn.BatchNorm2d) and layer.batch_norm is not None and layer.batch_norm.HasField("eps"):
        if not math.isclose(layer.batch_norm.eps, module.eps, rel_tol=1e-6):
            return f"{name}: eps {layer.batch_norm.eps} vs {module.eps}"
    return ""


def check_against(state, modules, network):
    """Raise a :class:`NotThisNetwork` unless ``state`` fills ``network``'s state dict exactly:
    every key, no other, every blob of a fitting shape and size, the layers' settings the
    modules' (an unset eps is caffe.proto's default, 1e-5, the network's), every value finite."""
    reference = network.state_dict()
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    wrong = [f"{k} {shape} for {tuple(reference[k].shape)}" for k, (value, shape) in state.items()
             if k in reference and (value.numel() != reference[k].numel()
                                    or (shape is not None and not fits(shape, reference[k].shape)))]
    own = dict(network.named_modules())
    settings = [problem for name, layer in modules.items() if name in own
                for problem in [settings_mismatch(name, layer, own[name])] if problem]
    problems = [f"{len(found)} {what} (e.g. {', '.join(found[:2])})" for what, found in (
        ("tensors missing", missing), ("tensors it lacks", unexpected), ("blobs of another shape", wrong),
        ("layers of other settings", settings)) if found]
    if problems:
        raise NotThisNetwork("; ".join(problems))
    broken = [k for k, (value, _) in state.items()
              if value.is_floating_point() and not np.isfinite(value.numpy()).all()]
    if broken:
        raise NotThisNetwork(f"{len(broken)} tensors hold NaN or Inf after the conversion (e.g. {broken[0]}: "
                             f"a batch norm's scale factor of 0?)")


def convert(path, kind=None):
    """The state dict (an OrderedDict of tensors) of the caffemodel ``path``: kazuto1011's
    ``deeplabv1_resnet101-coco.pth`` for ``kind`` coco, ``deeplabv2_resnet101_msc-vocaug.pth`` for
    voc12 (None: guessed from the layer names), checked against this project's network first.
    Returns it and the kind."""
    layers = read_caffemodel(path)
    kind = kind or guess_kind(layers)
    network, prefix = reference_network(kind)
    try:
        state, modules = convert_layers(layers, prefix)
        check_against(state, modules, network)
    except NotThisNetwork as e:
        raise ValueError(f"{path}: not the {kind} DeepLab ResNet-{DEPTH} caffemodel: {e}") from None
    reference = network.state_dict()
    return OrderedDict((k, value.reshape(reference[k].shape)) for k, (value, _) in state.items()), kind


# ----------------------------------------------------------------------------- the command line

@dataclass(frozen=True)
class ConvertConfig:
    caffemodel: str = field("", "the released .caffemodel to read (required)")
    out: str = field("", "the .pth to write (required), e.g. Data/sess/deeplabv1_resnet101-coco.pth")
    kind: str = field("", "coco (init.caffemodel: DeepLab-v1 with a 91-class fc) or voc12 (train*_iter_20000: "
                          "DeepLab-v2 MSC, 21 classes); '' = guessed from the layer names",
                      choices=("", *CLASSES))


def run(cfg):
    if not cfg.caffemodel or not cfg.out:
        raise ValueError("--caffemodel and --out are required")
    state, kind = convert(cfg.caffemodel, cfg.kind or None)
    save_torch(cfg.out, state)
    use = "--init" if kind == "coco" else "--weights (with --backbone caffe)"
    print(f"convert_caffemodel.py: {len(state)} tensors ({kind}) to {cfg.out}; DeepLab/train.py and infer.py take it "
          f"as {use}")


def main(argv=None):
    return tool_main(run, ConvertConfig, argv, __doc__, prog="convert_caffemodel.py")


if __name__ == "__main__":
    sys.exit(main())
