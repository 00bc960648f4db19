"""Reading and writing network weights, for both stages: one reader of weights files, one strict
loader, one fetcher of torchvision's ImageNet ResNets.

Everything loads with ``torch.load(weights_only=True)`` (no pickle) and strictly: every tensor
of the network must come from the file, and a key that fits nothing is an error naming it and
the file, so a checkpoint of another architecture fails at once.  The original networks register
each module under several names (IRNet's ``resnet50.layer1`` is also ``stage1.4`` and
``backbone.0.4``), so their state dicts repeat each tensor under aliases: the IRN networks give
:func:`canonical_state_dict` their aliases, which maps each key to the one name ours use.
"""
import re
import warnings
from pathlib import Path

import torch
import torchvision

from wsgcn.infra.io import save_torch

IMAGENET_RESNETS = {50: torchvision.models.ResNet50_Weights, 101: torchvision.models.ResNet101_Weights}


def load_error_summary(error):
    """One line for a ``torch.load`` error.  Torch's weights-only refusal spans several lines and
    advises ``weights_only=False``, which this loader never uses: keep the first sentence of its
    ``WeightsUnpickler error`` part (what the file holds that is not plain weights)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    match = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\n\s*\n|$)", text, re.S)
    if match and match.group(1).strip():
        text = match.group(1).split(". ")[0]
    text = " ".join(text.split())
    if "weights_only" in text:  # advice of a wording the pattern above does not know
        text = " ".join(sentence for sentence in re.split(r"(?<=[.!?])\s+", text) if "weights_only" not in sentence)
    return text or type(error).__name__


def load_torch_file(path, what="checkpoint", remedy=""):
    """What ``torch.save`` wrote to ``path``, read without pickle (``weights_only=True``).  A
    missing, truncated or foreign file is one line naming the file, ``what`` it should be, and
    the ``remedy``; torch's own advice to load with ``weights_only=False`` is never passed on."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:  # the machine's fault, not the file's
        raise
    except Exception as e:
        raise ValueError(f"{path}: not a loadable weights-only {what} ({load_error_summary(e)}){remedy}") from None


def read_state_dict(path, what="checkpoint"):
    """The state dict of tensors in ``path`` (:func:`load_torch_file`), the ``module.`` prefix
    of (Distributed)DataParallel removed; errors name the file."""
    state = load_torch_file(path, what)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def canonical_state_dict(state, aliases, ignore_prefixes=()):
    """Rename ``state``'s keys through ``aliases`` (regex -> replacement, each applied in turn, so
    one alias may lead to another) and drop keys starting with ``ignore_prefixes``.  A key that
    is already canonical wins over an alias of it."""
    canonical, aliased = {}, {}
    for key, value in state.items():
        if key.startswith(tuple(ignore_prefixes)):
            continue
        new_key = key
        for pattern, replacement in aliases:
            new_key = re.sub(pattern, replacement, new_key, count=1)
        if new_key == key:
            canonical[key] = value
        else:
            aliased.setdefault(new_key, value)
    return {**aliased, **canonical}


def load_strict(module, state, source, optional=()):
    """Load ``state`` into ``module``: every key of the module from ``state`` (except keys starting
    with the ``optional`` prefixes, which keep their values), no key the module lacks, every shape
    equal, every value finite (NaN or Inf: the training that wrote it diverged); values take the
    module's dtypes.  ``num_batches_tracked`` may be missing (batch norm with a momentum does not
    use it).  ``source`` names the file in the error."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(tuple(optional))
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state
             and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{source}: does not fit {type(module).__name__}: {len(missing)} missing "
                         f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}), "
                         f"{len(wrong)} of another shape (e.g. {wrong[:2]})")
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise ValueError(f"{source}: {len(broken)} tensor(s) hold NaN or Inf (e.g. {broken[0]}): the training that "
                         f"wrote it diverged; train it again")
    merged = {**own, **{k: v.to(own[k].dtype) for k, v in state.items()}}
    module.load_state_dict(merged, strict=True)
    return module


def load_checkpoint(model, path, aliases=(), ignore_prefixes=()):
    """Load the weights file ``path`` into ``model`` strictly (:func:`load_strict`), after mapping
    its keys through ``aliases`` and dropping those starting with ``ignore_prefixes``
    (:func:`canonical_state_dict`)."""
    return load_strict(model, canonical_state_dict(read_state_dict(path), aliases, ignore_prefixes), path)


def save_checkpoint(model, path):
    """Write ``model``'s state dict to ``path`` atomically."""
    save_torch(path, model.state_dict())


def imagenet_state_dict(depth, remedy):
    """torchvision's ImageNet ResNet-``depth`` weights (IMAGENET1K_V1, downloaded once into torch's
    cache), ``fc.*`` included.  Without network or cache: one line ending with ``remedy`` (what
    to pass instead)."""
    try:
        return IMAGENET_RESNETS[depth].IMAGENET1K_V1.get_state_dict(progress=False)
    except MemoryError:
        raise
    except Exception as e:  # no network, no cache: say what to do instead
        raise ValueError(f"could not fetch torchvision's ImageNet ResNet-{depth} weights ({e}); {remedy}") from None
