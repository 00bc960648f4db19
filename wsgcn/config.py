"""Typed settings of a stage as one dataclass, and its command line built from the fields.

Every field becomes ``--<name>``; booleans take ``True``/``False`` (as IRNet's runner,
``--make_cam_pass False``); tuples take several values (``--cam_scales 1.0 0.5``).  A field
with a ``parse`` function takes several values too, each parsed into a tuple, and the tuples
are joined (``--cam_eval_thres 0.05:0.60:0.05`` with :func:`float_values`).  A profile is a
named set of overrides (``--profile demo``) applied before the explicit flags.
"""
import argparse
import dataclasses
import math
import typing

from wsgcn.runtime import default_workers


def str2bool(text):
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


MAX_RANGE_VALUES = 10_000


def float_values(text):
    """A tuple of floats from one command-line value: a number (``0.15``), or a range
    ``start:stop:step`` (``0.05:0.60:0.05``: 0.05, 0.10, ..., 0.60).  The range includes
    ``stop`` when it lies on the grid, up to float rounding (the count is taken with a 1e-9
    tolerance, and the values rounded to 12 decimals); anything else is a clear error."""
    parts = str(text).split(":")
    expected = (f"expected a number or a range start:stop:step (several values: separated by spaces), "
                f"got {text!r}")
    if len(parts) not in (1, 3):
        raise argparse.ArgumentTypeError(expected)
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    if not all(math.isfinite(x) for x in numbers):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    if len(numbers) == 1:
        return (numbers[0],)
    start, stop, step = numbers
    if step <= 0 or stop < start:
        raise argparse.ArgumentTypeError(f"range {text!r}: need step > 0 and start <= stop")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_RANGE_VALUES:
        raise argparse.ArgumentTypeError(f"range {text!r} has {count} values, more than {MAX_RANGE_VALUES}")
    return tuple(round(start + i * step, 12) for i in range(count))


def _argument_spec(field_type):
    """(type, nargs) for argparse from a field's annotation."""
    origin = typing.get_origin(field_type)
    if origin is tuple:
        item_types = typing.get_args(field_type)
        return item_types[0], ("+" if item_types[-1] is Ellipsis else len(item_types))
    if field_type is bool:
        return str2bool, None
    return field_type, None


def build_parser(config_cls, profiles, description=None):
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(profiles), default="paper",
                        help="named set of defaults: 'paper' (published settings) or a smaller one")
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        parse = field.metadata.get("parse")
        arg_type, nargs = (parse, "+") if parse else _argument_spec(hints[field.name])
        help_text = field.metadata.get("help", "")
        parser.add_argument(f"--{field.name}", type=arg_type, nargs=nargs, default=None,
                            help=f"{help_text} (default: {field.default!r})".strip())
    return parser


def parse_config(config_cls, profiles, argv=None, description=None):
    """The config from the command line: defaults, then the profile, then explicit flags."""
    args = build_parser(config_cls, profiles, description).parse_args(argv)
    overrides = dict(profiles[args.profile])
    for field in dataclasses.fields(config_cls):
        value = getattr(args, field.name)
        if value is not None:
            if field.metadata.get("parse"):
                value = [item for parsed in value for item in parsed]
            overrides[field.name] = tuple(value) if isinstance(value, list) else value
    return config_cls(**overrides)


def field(default, help, parse=None):
    """A config field with its help text; ``parse`` (a function from one command-line value to a
    tuple, e.g. :func:`float_values`) makes the flag take several values, joined into one tuple."""
    metadata = {"help": help, "parse": parse} if parse else {"help": help}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class CommonConfig:
    """The settings every stage has: where the data and outputs are, and how to run."""
    work_dir: str = field("Data", "every input and output is under this folder (see wsgcn/layout.py)")
    voc12_root: str = field("Data/VOC12/VOC2012", "VOC-format data set: JPEGImages, SegmentationClassAug, Annotations")
    cls_labels: str = field("", "image-level label table (name idx idx ...); '' = the XML annotations")
    allow_pickle: bool = field(False, "read legacy pickled files (IRNet's .npy CAMs and label dicts, WSGCN's .npy Logits)")
    device: str = field("", "cpu, cuda, cuda:N; '' = cuda when available")
    num_workers: int = field(default_workers(), "worker processes per process (data loading, per-image CRFs); "
                                                "default: half the cores shared among torchrun's processes")
    dist_timeout: int = field(60, "minutes a process waits for the others under torchrun (e.g. while rank 0 "
                                  "evaluates or saves) before the run is declared hung")
    quiet: bool = field(False, "no progress bars")
    overwrite: bool = field(False, "per-image steps: redo images whose outputs exist (default: skip them, "
                                   "so a re-run after an interruption continues)")
