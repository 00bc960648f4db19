"""Run any subset of the IRN steps (docs/method.md §1-5), in order.

    python IRN/run_sample.py --voc12_root Data/VOC12/VOC2012 --work_dir Data
    python IRN/run_sample.py --profile demo --train_cam_pass False ...
    torchrun --nproc_per_node 4 IRN/run_sample.py ...      # 4 GPUs (see the README)

``--<step>_pass True|False`` selects steps; every hyper-parameter is a flag (``--help``).
The lists, and the weights of a step that is not retrained, are checked before any step
starts.  A per-image step that fails on some images goes on with the others and lists them in
its output folder's ``failures.txt``; the later steps still run, and the exit status is 1.
"""
import importlib
import sys
import time

from IRN.config import PROFILES, IRNConfig
from IRN.net.resnet50_cam import load_cam_net
from IRN.net.resnet50_irn import load_irnet
from wsgcn.infra import distributed
from wsgcn.infra.io import prepare_outputs
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.per_image import StepFailed
from wsgcn.infra.scripts import script_main
from wsgcn.seg.dataset import read_image_list

STEPS = (  # (flag, module)
    ("train_cam_pass", "IRN.step.train_cam"),
    ("make_cam_pass", "IRN.step.make_cam"),
    ("eval_cam_pass", "IRN.step.eval_cam"),
    ("cam_to_ir_label_pass", "IRN.step.cam_to_ir_label"),
    ("train_irn_pass", "IRN.step.train_irn"),
    ("make_sem_seg_pass", "IRN.step.make_sem_seg_labels"),
    ("eval_sem_seg_pass", "IRN.step.eval_sem_seg"),
)
EVALUATION = {"eval_cam_pass", "eval_sem_seg_pass"}  # rank 0 only, after every process has finished


def preflight(cfg):
    """Fail before any work: a missing data set or images, unreadable or empty lists, weights
    that the selected steps read but do not train themselves that are missing or of the wrong
    architecture, and output folders that cannot be written."""
    data = cfg.data_set()
    for list_path in (cfg.train_list, cfg.infer_list, cfg.val_list):
        if list_path:
            names = read_image_list(list_path)
            # a few missing images fail one by one in their step; none at all is the wrong data set
            if not any(data.image_path(name).is_file() for name in names):
                raise FileNotFoundError(f"none of the {len(names)} images of {list_path} is in {data.root} "
                                        f"(e.g. {data.image_path(names[0])}): set --data_root or --voc12_root "
                                        f"(DATA_ROOT or VOC12_ROOT for train.sh) to the data set of the list")
    if cfg.eval_cam_pass or cfg.eval_sem_seg_pass:
        names = read_image_list(cfg.infer_list)
        if not data.has_ground_truth or not any(data.gt_path(name).is_file() for name in names):
            where = data.gt_path(names[0]).parent if data.has_ground_truth else f"the {data.name} data set"
            raise FileNotFoundError(f"{where} has no ground truth of the infer list: eval_cam and eval_sem_seg need "
                                    f"it (or pass --eval_cam_pass False --eval_sem_seg_pass False)")
    work = WorkDir(cfg.work_dir)
    if not cfg.train_cam_pass and (cfg.make_cam_pass or (cfg.train_irn_pass and cfg.irn_backbone_weights == "cam")):
        load_cam_net(work / cfg.cam_weights_name, num_classes=data.num_object_classes)
    if not cfg.train_irn_pass and cfg.make_sem_seg_pass:
        load_irnet(work / cfg.irn_weights_name)
    for flag, module in STEPS:  # every output folder writable, and no debris of a killed run in it
        places = getattr(importlib.import_module(module), "output_places", None)
        if getattr(cfg, flag) and places is not None:
            prepare_outputs(*places(cfg))


def run(cfg):
    preflight(cfg)
    failed = run_steps(cfg)
    if failed:
        raise StepFailed(f"run_sample.py: some images failed in {', '.join(failed)} (see their failures.txt)")


def main(argv=None):
    return script_main(run, IRNConfig, PROFILES, argv, __doc__, prog="run_sample.py")


def run_steps(cfg):
    """Run the selected steps in order; returns the names of those in which some images failed."""
    failed = []
    for flag, module in STEPS:
        if not getattr(cfg, flag):
            continue
        distributed.barrier()
        if flag in EVALUATION and not distributed.is_main():
            continue
        start = time.time()
        try:
            importlib.import_module(module).run(cfg)
        except StepFailed as error:
            print(error, file=sys.stderr, flush=True)
            failed.append(module.rsplit(".", 1)[1])
        print(f"[{module.rsplit('.', 1)[1]}] done in {time.time() - start:.1f} s", flush=True)
    distributed.barrier()
    return failed


if __name__ == "__main__":
    main()
