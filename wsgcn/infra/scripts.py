"""The ``main`` every script shares: parse its typed config, run, and turn the outcome into the
exit status train.sh reads:

    0  done;   1  some images failed (listed in the step's failures.txt), the others were done,
       or an evaluation (eval.py, the report) found what it scores missing or wrong;
    2  nothing was done, or the run stopped: a bad list, data set, setting or weights, or a
       fault of the machine (full disk, unwritable folder, a missing package), said in one line;
    3  the run crashed (out of memory, a NCCL error, a bug): its traceback is printed;
  143  SIGTERM ended the run, said in one line (128 + 15, as a shell reports a process ended by TERM).

The stage scripts go through :func:`script_main`, which joins torchrun's process group on the
config's device.  The tools (eval.py, the report, the pictures, the benchmark, the demo data,
export_cams) go through :func:`tool_main`: one process, no device set up, and the exit status
returned, since code and tests call them too.
"""
import dataclasses
import sys
import traceback
import typing
from pathlib import Path

from wsgcn.infra import distributed
from wsgcn.infra.config import parse_config
from wsgcn.infra.io import EnvironmentFault, environment_fault
from wsgcn.infra.per_image import StepFailed
from wsgcn.infra.runtime import Terminated, one_line_warnings, resolve_device, terminate_on_sigterm

CRASHED = 3

NO_PROFILES = {"paper": {}}  # a tool without named sets of settings


class EvaluationFailed(Exception):
    """What an evaluation scores is missing or wrong (a prediction, a ground truth, its list):
    exit status 1, one line, as eval.py and the report have always said it."""


def script_main(run, config_cls, profiles, argv=None, description=None, prog=None):
    """A stage script: run(cfg) on the config's device, in torchrun's process group when there is
    one; returns the config, or ends the process with the exit status above.  ``prog``: the
    script's name in messages (default: the running script's)."""
    def run_on_device(cfg):
        distributed.init(resolve_device(cfg.device), cfg.dist_timeout)
        run(cfg)
        # every process reaches the end before any leaves the group: a gloo peer that closes its
        # sockets while another still finishes the last collective can abort that one (SIGABRT)
        distributed.barrier()
        distributed.shutdown()

    cfg = _parse(config_cls, profiles, argv, description)
    status = _exit_status(run_on_device, cfg, prog or Path(sys.argv[0]).name)
    if status:
        raise SystemExit(status)
    return cfg


def tool_main(run, config_cls, argv=None, description=None, prog=None, profiles=NO_PROFILES):
    """A tool: run(cfg) in this process; returns the exit status above (``run`` may return one,
    e.g. 1 when the report finds nothing to score).  A bad argument ends the process (status 2)."""
    cfg = _parse(config_cls, profiles, argv, description)
    return _exit_status(run, cfg, prog or Path(sys.argv[0]).name)


def _parse(config_cls, profiles, argv, description):
    one_line_warnings()
    argv = sys.argv[1:] if argv is None else list(argv)
    return parse_config(config_cls, profiles, bare_switches(config_cls, argv), description=description)


def bare_switches(config_cls, argv):
    """``argv`` with a boolean flag given without a value read as True: ``--protocol`` is
    ``--protocol True``, as eval.py's switches have always been written."""
    hints = typing.get_type_hints(config_cls)
    booleans = {f"--{field.name}" for field in dataclasses.fields(config_cls) if hints[field.name] is bool}
    out = []
    for i, arg in enumerate(argv):
        out.append(arg)
        alone = i + 1 == len(argv) or argv[i + 1].startswith("-")  # no value of True/False starts with '-'
        if arg in booleans and alone:
            out.append("True")
    return out


def _exit_status(run, cfg, prog):
    terminate_on_sigterm()  # from here a TERM unwinds the run (temporary files removed, workers stopped)
    try:
        status = run(cfg)
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr, flush=True)
        return Terminated.exit_status
    except StepFailed as error:
        print(error, file=sys.stderr, flush=True)
        return 1
    except EvaluationFailed as error:
        print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
        return 1
    # per-image errors never get here; an ImportError here is a missing optional package (matplotlib)
    except (FileNotFoundError, ValueError, ImportError, EnvironmentFault) as error:
        print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
        return 2
    except Exception as error:
        fault = environment_fault(error)  # a full disk, an unwritable folder met outside atomic_path
        if fault is not None:
            print(f"{prog}: error: {fault}", file=sys.stderr, flush=True)
            return 2
        traceback.print_exc()
        print(f"{prog}: crashed (exit status {CRASHED})", file=sys.stderr, flush=True)
        return CRASHED
    return status or 0
