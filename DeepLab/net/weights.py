"""DeepLab weights: trained checkpoints of either code base, and the initialisations of training.

Everything loads with ``torch.load(weights_only=True)`` and strictly: every tensor of the
architecture must come from the file (only a dropped classifier head and, for an
initialisation, the new ASPP head are exempt), and a key that fits nothing is an error naming
it and the file.
"""
import torchvision

from DeepLab.net.deeplab_v2 import aspp_of
from IRN.net.checkpoint import read_state_dict as read_weights


def read_state_dict(path):
    """A weights-only state dict from ``path``, ``module.`` prefixes of (Distributed)DataParallel removed."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in read_weights(path).items()}


def load_strict(module, state, source, optional=()):
    """Load ``state`` into ``module``: every key of the module from the file (except keys starting
    with ``optional`` prefixes), no key the module lacks, every shape equal.  ``num_batches_tracked``
    may be missing (batch norm does not use it with a momentum)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(tuple(optional))
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state
             and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{source}: does not fit {type(module).__name__}: {len(missing)} missing (e.g. {missing[:2]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}), {len(wrong)} of another shape "
                         f"(e.g. {wrong[:2]})")
    merged = {**own, **{k: v.to(own[k].dtype) for k, v in state.items()}}
    module.load_state_dict(merged, strict=True)
    return module


def load_deeplab(model, path):
    """A trained DeepLab-v2 checkpoint into ``model`` (keys ``base.layer1...`` of kazuto1011's code
    for the caffe backbone, ``base.model2...`` of johnnylu305's for the torchvision one)."""
    return load_strict(model, read_state_dict(path), path)


def initialise(model, init, backbone, cam_weights=None):
    """Initialise a :func:`DeepLab.net.deeplab_v2.deeplab_v2` network for training.

    init: ``none`` (random); ``imagenet`` (torchvision's ImageNet ResNet weights, torchvision
    backbone); ``cam`` (the trained CAM network's ResNet-50 at ``cam_weights``, torchvision
    backbone of depth 50); or a path to one of: kazuto1011's COCO-trained DeepLab-v1
    (``layer1.conv1.conv.weight``, ..., ``fc.*``: the 1x1 COCO head is dropped), a torchvision
    ResNet state dict (``conv1.weight``, ..., ``fc.*`` dropped), or a whole DeepLab-v2 checkpoint
    (``base.*``, fine-tuning from it).  The ASPP head keeps its N(0, 0.01) init unless the file is
    a whole DeepLab checkpoint.
    """
    base = model.base
    if init == "none":
        return model
    if init in ("imagenet", "cam"):
        if backbone != "torchvision":
            raise ValueError(f"--init {init} initialises the torchvision backbone, not --backbone {backbone}")
        backbone_net = base.model2
        if init == "imagenet":
            depth = len(backbone_net.layer3)
            weights = {6: torchvision.models.ResNet50_Weights, 23: torchvision.models.ResNet101_Weights}[depth]
            try:
                state = weights.IMAGENET1K_V1.get_state_dict(progress=False)
            except Exception as e:  # no network, no cache: say what to do instead
                raise RuntimeError(f"could not fetch torchvision's ImageNet ResNet weights ({e}); pass --init PATH "
                                   f"to a local ResNet state dict") from None
            source = "torchvision ImageNet weights"
        else:
            from IRN.net.resnet50_cam import load_cam_net
            state, source = load_cam_net(cam_weights).resnet50.state_dict(), cam_weights
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        return _load_backbone(backbone_net, state, source, model)
    state = read_state_dict(init)
    if any(k.startswith("base.") for k in state):
        return load_strict(model, state, init)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    return _load_backbone(base if backbone == "caffe" else base.model2, state, init, model)


def _load_backbone(module, state, source, model):
    """Every backbone tensor of ``module`` from ``state``; the ASPP head stays as initialised."""
    head = {f"aspp.{k}" for k in aspp_of(model).state_dict()}
    load_strict(module, state, source, optional=tuple(head))
    return model
