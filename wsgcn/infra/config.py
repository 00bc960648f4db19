"""Typed settings of a stage as one dataclass, and its command line built from the fields.

Every field becomes ``--<name>``; booleans take ``True``/``False`` (as IRNet's runner,
``--make_cam_pass False``); tuples take several values (``--cam_scales 1.0 0.5``).  A field
with a ``parse`` function takes several values too, each parsed into a tuple, and the tuples
are joined (``--cam_eval_thres 0.05:0.60:0.05`` with :func:`float_values`).  A profile is a
named set of overrides (``--profile demo``) applied before the explicit flags.

A field declares the values it allows (``low``/``high``/``above``/``below``, ``choices``, and
``or_path`` for a keyword or a file): shown in ``--help`` and checked once the defaults, the profile
and the flags are combined, so a bad setting stops the script before it reads or writes anything,
with one line and exit status 2.
"""
import argparse
import dataclasses
import math
import operator
import os
import typing

from wsgcn.infra.runtime import default_workers


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


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are the one line ``prog: error: ...`` (exit status 2): the usage it
    would print first lists every flag of the stage, burying the line that says what is wrong."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(config_cls, profiles, description=None):
    parser = OneLineParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(profiles), default="paper",
                        help="named set of defaults: 'paper' (published settings) or a smaller one")
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        parse = field.metadata.get("parse")
        arg_type, nargs = (parse, "+") if parse else _argument_spec(hints[field.name])
        help_text = field.metadata.get("help", "")
        rule = allowed_values(field)
        shown = f"{rule}; default: {field.default!r}" if rule else f"default: {field.default!r}"
        parser.add_argument(f"--{field.name}", type=arg_type, nargs=nargs, default=None,
                            help=f"{help_text} ({shown})".strip())
    return parser


def parse_config(config_cls, profiles, argv=None, description=None):
    """The config from the command line: defaults, then the profile, then explicit flags; a value
    outside its field's declared range is a parser error (one line, exit status 2)."""
    parser = build_parser(config_cls, profiles, description)
    args = parser.parse_args(argv)
    overrides = dict(profiles[args.profile])
    for field in dataclasses.fields(config_cls):
        value = getattr(args, field.name)
        if value is not None:
            if field.metadata.get("parse"):
                value = [item for parsed in value for item in parsed]
            overrides[field.name] = tuple(value) if isinstance(value, list) else value
    for field in dataclasses.fields(config_cls):
        problem = out_of_range(field, overrides.get(field.name, field.default))
        if problem:
            parser.error(problem)
    return config_cls(**overrides)


# A declared bound: its keyword in field(), its sign in messages, and the test it makes.
BOUNDS = (("low", ">=", operator.ge), ("above", ">", operator.gt),
          ("high", "<=", operator.le), ("below", "<", operator.lt))


def field(default, help, parse=None, low=None, high=None, above=None, below=None, choices=None, or_path=False):
    """A config field with its help text and the values it allows.

    ``parse`` (a function from one command-line value to a tuple, e.g. :func:`float_values`)
    makes the flag take several values, joined into one tuple.  ``low``/``high`` are inclusive
    bounds and ``above``/``below`` exclusive ones, of the number or of every item of a tuple;
    ``choices`` lists the allowed values, where a choice ``name:N`` stands for name:0, name:1, ...
    With ``or_path``, a value that is none of the choices must be the path of an existing file
    (a weights file beside keywords such as ``imagenet``): a misspelt keyword and a missing file
    are both refused when parsed, not when the file would be read hours into the run.
    """
    limits = dict(low=low, above=above, high=high, below=below)
    metadata = {"help": help, "parse": parse, "choices": choices, "or_path": or_path,
                "bounds": {name: limit for name, limit in limits.items() if limit is not None}}
    return dataclasses.field(default=default, metadata=metadata)


def _is_choice(value, choice):
    if isinstance(choice, str) and choice.endswith(":N"):  # e.g. cuda:N -> cuda:0, cuda:1, ...
        name, _, index = str(value).partition(":")
        return f"{name}:N" == choice and index.isascii() and index.isdigit()
    return value == choice


def _in_bounds(value, bounds):
    if isinstance(value, float) and not math.isfinite(value):
        return False  # no setting with a range means anything at inf or NaN
    return all(test(value, bounds[name]) for name, _, test in BOUNDS if name in bounds)


def allowed_values(field):
    """The field's declared range in words ('>= 1', 'each > 0', 'one of ...'); '' when it has none."""
    choices, bounds = field.metadata.get("choices"), field.metadata.get("bounds")
    if choices:
        words = ", ".join(repr(choice) if choice == "" else str(choice) for choice in choices)
        if field.metadata.get("or_path"):
            return f"one of {words}, or the path of an existing file"
        pattern = any(isinstance(choice, str) and choice.endswith(":N") for choice in choices)
        return f"one of {words}" + (" (N = 0, 1, ...)" if pattern else "")
    if not bounds:
        return ""
    return ("each " if isinstance(field.default, tuple) else "") + _bounds_in_words(bounds)


def _bounds_in_words(bounds):
    return " and ".join(f"{sign} {bounds[name]}" for name, sign, _ in BOUNDS if name in bounds)


def out_of_range(field, value):
    """The error line for a value outside the field's declared range, or None when it is allowed."""
    choices, bounds = field.metadata.get("choices"), field.metadata.get("bounds")
    for item in (value if isinstance(value, tuple) else (value,)):
        if choices and not any(_is_choice(item, choice) for choice in choices):
            if not (field.metadata.get("or_path") and os.path.isfile(item)):
                return f"argument --{field.name}: {item!r} is not {allowed_values(field)}"
        if bounds and not _in_bounds(item, bounds):
            which = "each value " if isinstance(value, tuple) else ""
            return f"argument --{field.name}: {item!r} is out of range: {which}must be {_bounds_in_words(bounds)}"
    return None


# Defaults the stages and the tools share, written once (CommonConfig has work_dir and voc12_root).
LABEL_LIST = "Data/VOC12/train.txt"  # the images Stage I labels and scores (IRN's --infer_list, GCN's --train_list)
CAM_EVAL_THRES = 0.15  # background score at which CAMs become labels to score (IRNet's eval_cam)


@dataclasses.dataclass(frozen=True)
class CommonConfig:
    """The settings every stage has: where the data and outputs are, and how to run."""
    work_dir: str = field("Data", "every input and output is under this folder (see wsgcn/infra/layout.py)")
    device: str = field("", "what to compute on, cuda:N being GPU N; '' or auto = cuda when available",
                        choices=("", "auto", "cpu", "cuda", "cuda:N"))
    num_workers: int = field(default_workers(), "worker processes per process (data loading, per-image CRFs), "
                                                "0 = none (all in the main process); default: half the cores "
                                                "shared among torchrun's processes", low=0)
    dist_timeout: int = field(60, "minutes a process waits for the others under torchrun (e.g. while rank 0 "
                                  "evaluates or saves) before the run is declared hung", low=1)
    quiet: bool = field(False, "no progress bars")
    overwrite: bool = field(False, "per-image steps: redo images whose outputs exist (default: skip them, "
                                   "so a re-run after an interruption continues)")
