"""The ``main`` every step script shares: parse the stage's config, join torchrun's process
group when there is one, run, and turn the outcome into the exit status train.sh reads:

    0  done;   1  some images failed (listed in the step's failures.txt), the others were done;
    2  nothing was done, or the run stopped: a bad list, data set, setting or weights, or a
       fault of the machine (full disk, unwritable folder), said in one line;
    3  the run crashed (out of memory, a NCCL error, a bug): its traceback is printed;
  143  SIGTERM ended the run, said in one line (128 + 15, as a shell reports a process ended by TERM).
"""
import sys
import traceback
from pathlib import Path

from wsgcn import distributed
from wsgcn.config import parse_config
from wsgcn.io import EnvironmentFault, environment_fault
from wsgcn.per_image import StepFailed
from wsgcn.runtime import Terminated, one_line_warnings, resolve_device, terminate_on_sigterm

CRASHED = 3


def script_main(run, config_cls, profiles, argv=None, description=None, prog=None):
    """run(cfg) with the config from ``argv``; returns the config, or ends the process with the
    exit status above.  ``prog``: the script's name in messages (default: the running script's)."""
    prog = prog or Path(sys.argv[0]).name
    one_line_warnings()
    cfg = parse_config(config_cls, profiles, argv, description=description)
    terminate_on_sigterm()  # from here a TERM unwinds the run (temporary files removed, workers stopped)
    try:
        distributed.init(resolve_device(cfg.device), cfg.dist_timeout)
        run(cfg)
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr, flush=True)
        raise SystemExit(Terminated.exit_status) from None
    except StepFailed as error:
        print(error, file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except (FileNotFoundError, ValueError, EnvironmentFault) as error:  # per-image errors never get here
        print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except Exception as error:
        fault = environment_fault(error)  # a full disk, an unwritable folder met outside atomic_path
        if fault is not None:
            print(f"{prog}: error: {fault}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        traceback.print_exc()
        print(f"{prog}: crashed (exit status {CRASHED})", file=sys.stderr, flush=True)
        raise SystemExit(CRASHED) from None
    return cfg
