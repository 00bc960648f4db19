"""Run any subset of the IRN steps (SPEC §1-5), in order.

    python IRN/run_sample.py --voc12_root Data/VOC12/VOC2012 --work_dir Data
    python IRN/run_sample.py --profile demo --train_cam_pass False ...

``--<step>_pass True|False`` selects steps; every hyper-parameter is a flag (``--help``).
"""
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from IRN.config import PROFILES, IRNConfig  # noqa: E402
from wsgcn.config import parse_config  # noqa: E402
from wsgcn.runtime import one_line_warnings  # noqa: E402

STEPS = (  # (flag, module)
    ("train_cam_pass", "IRN.step.train_cam"),
    ("make_cam_pass", "IRN.step.make_cam"),
    ("eval_cam_pass", "IRN.step.eval_cam"),
    ("cam_to_ir_label_pass", "IRN.step.cam_to_ir_label"),
    ("train_irn_pass", "IRN.step.train_irn"),
    ("make_sem_seg_pass", "IRN.step.make_sem_seg_labels"),
    ("eval_sem_seg_pass", "IRN.step.eval_sem_seg"),
)


def main(argv=None):
    one_line_warnings()
    cfg = parse_config(IRNConfig, PROFILES, argv, description=__doc__)
    for flag, module in STEPS:
        if getattr(cfg, flag):
            start = time.time()
            importlib.import_module(module).run(cfg)
            print(f"[{module.rsplit('.', 1)[1]}] done in {time.time() - start:.1f} s", flush=True)
    return cfg


if __name__ == "__main__":
    main()
