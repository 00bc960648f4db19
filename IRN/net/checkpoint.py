"""Reading and writing network weights, including the checkpoints published by IRNet/WSGCN.

The original networks register every module under several names (``resnet50.layer1`` is
also ``stage1.4`` or ``stage2.0`` and ``backbone.0.4`` ...), so their state dicts repeat each
tensor under aliases, and IRNet's training wrapper adds buffers that only training uses.  We
map each key to the one name our networks use, drop the training-only buffers, and load
strictly, so a checkpoint of another architecture fails at once with its file named.
"""
import re
import warnings
from pathlib import Path

import torch

from wsgcn.io import save_torch


def canonical_state_dict(state, aliases, ignore_prefixes=()):
    """Rename ``state``'s keys through ``aliases`` (regex -> replacement, each applied in turn, so
    one alias may lead to another) and drop keys starting with ``ignore_prefixes``.  A key that
    is already canonical wins over an alias of it."""
    canonical, aliased = {}, {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key  # (Distributed)DataParallel
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
    except Exception as e:
        raise ValueError(f"{path}: not a loadable weights-only {what} ({load_error_summary(e)}){remedy}") from None


def read_state_dict(path, what="checkpoint"):
    """The state dict in ``path``, read without pickle (:func:`load_torch_file`); errors name the file."""
    state = load_torch_file(path, what)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def load_checkpoint(model, path, aliases=(), ignore_prefixes=()):
    """Load weights from ``path`` into ``model`` (strict, after alias mapping), without pickle."""
    state = canonical_state_dict(read_state_dict(path), aliases, ignore_prefixes)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong_shape:
        raise ValueError(f"{path}: checkpoint does not fit {type(model).__name__}: "
                         f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                         f"(e.g. {unexpected[:2]}), {len(wrong_shape)} of another shape (e.g. {wrong_shape[:2]})")
    model.load_state_dict(state, strict=True)
    return model


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


def save_checkpoint(model, path):
    """Write ``model``'s state dict to ``path`` atomically."""
    save_torch(path, model.state_dict())
