"""DeepLab weights: trained checkpoints of either code base, and the initialisations of training.

Everything loads with ``torch.load(weights_only=True)`` and strictly (:mod:`wsgcn.infra.checkpoint`):
every tensor of the architecture must come from the file (only a dropped classifier head and,
for an initialisation, the new ASPP head are exempt), and a key that fits nothing is an error
naming it and the file.
"""
from DeepLab.net.deeplab_v2 import backbone_named
from wsgcn.infra.checkpoint import imagenet_state_dict, load_checkpoint, load_strict, read_state_dict

TORCHVISION_INITS = ("imagenet", "cam")  # --init keywords that name torchvision ResNet weights


def load_deeplab(model, path):
    """A trained DeepLab-v2 checkpoint into ``model`` (keys ``base.<the backbone's trunk>...``:
    ``base.layer1...`` of kazuto1011's code for the caffe backbone, ``base.model2...`` of
    johnnylu305's for the torchvision one)."""
    return load_checkpoint(model, path)


def check_init(init, backbone):
    """``--init imagenet`` and ``cam`` are torchvision ResNets: they initialise a backbone that
    takes them (``Backbone.torchvision_resnet``) only."""
    if init in TORCHVISION_INITS and not backbone_named(backbone).torchvision_resnet:
        raise ValueError(f"--init {init} initialises the torchvision backbone, not --backbone {backbone}")


def initialise(model, init, backbone, depth, state=None, source=None):
    """Initialise a :func:`DeepLab.net.deeplab_v2.deeplab_v2` network on ``backbone`` of ``depth``
    for training.

    init: ``none`` (random); ``imagenet`` (torchvision's ImageNet ResNet weights, torchvision
    backbone); ``cam`` (the trained CAM network's ResNet-50, torchvision backbone of depth 50:
    its state dict is ``state``, read from ``source`` by DeepLab/train.py, so that this package
    imports no Stage I code); or a path to one of: kazuto1011's COCO-trained DeepLab-v1
    (``layer1.conv1.conv.weight``, ..., ``fc.*``: the 1x1 COCO head is dropped), a torchvision
    ResNet state dict (``conv1.weight``, ..., ``fc.*`` dropped), or a whole DeepLab-v2 checkpoint
    (``base.*``, fine-tuning from it).  A backbone-only file loads into the backbone's trunk
    (``Backbone.trunk``) and the ASPP head keeps its N(0, 0.01) init.
    """
    check_init(init, backbone)
    if init == "none":
        return model
    if init == "imagenet":
        state = imagenet_state_dict(depth, "pass --init PATH to a local ResNet state dict")
        source = "torchvision ImageNet weights"
    elif init == "cam":
        if state is None:
            raise ValueError("--init cam: the CAM network's state dict was not given")
    else:
        state, source = read_state_dict(init), init
        if any(k.startswith("base.") for k in state):
            return load_strict(model, state, init)
    trunk = backbone_named(backbone).trunk_of(model)
    head = tuple(f"aspp.{k}" for k in trunk.aspp.state_dict())
    load_strict(trunk, {k: v for k, v in state.items() if not k.startswith("fc.")}, source, optional=head)
    return model
