"""The ``main`` every step script shares: parse the stage's config, join torchrun's process
group when there is one, run, and turn failed images into exit status 1."""
import sys
from pathlib import Path

from wsgcn import distributed
from wsgcn.config import parse_config
from wsgcn.per_image import StepFailed
from wsgcn.runtime import one_line_warnings, resolve_device


def script_main(run, config_cls, profiles, argv=None, description=None):
    """run(cfg) with the config from ``argv``; returns the config.  Images that failed (listed
    in the step's failures.txt) end the script with exit status 1 after the other images; an
    error before the images (a bad list, missing or wrong weights) with one line and status 2."""
    one_line_warnings()
    cfg = parse_config(config_cls, profiles, argv, description=description)
    distributed.init(resolve_device(cfg.device))
    try:
        run(cfg)
    except StepFailed as error:
        print(error, file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except (FileNotFoundError, ValueError) as error:  # per-image errors never get here (see Failures)
        print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    return cfg
