"""The paper's path at VOC size, rehearsed: every step of both stages with the ``paper`` profile's
shapes and only the iteration counts cut, then one table of what each step costs.

    bash scripts/rehearse.sh                      # the CPU, synthetic VOC-sized images
    bash scripts/rehearse.sh --device cuda        # a GPU
    bash scripts/rehearse.sh --init imagenet      # the paper's recipe itself (needs the weights)

It writes a synthetic data set of PASCAL VOC's image sizes (long side 500 in both orientations,
every fourth image smaller; ``python -m wsgcn.demo_data --image_size voc``) and runs, each step in
a process of its own: the IRN stage (train_cam: crops of 512, make_cam: 4 scales, train_irn: crops
of 512, make_sem_seg_labels: the 512 canvas), the GCN stage (graphs of the image's stride-4 grid,
250 epochs, the dense CRF) and Stage II (DeepLab-v2 ResNet-101 with MSC on crops of 321, inference
at full size with the CRF).  Batch sizes are the published ones (CAM 16, IRNet 32, DeepLab 5 x 2)
unless the list is shorter, then the list's length (8 images by default: CAM and IRNet batches
of 8).  Per step it reports seconds per image
(per-image steps) or per iteration (training steps), the peak resident memory of the process,
the peak CUDA memory on a GPU, and the FLOPs per iteration, or of the list's first image (a
500-pixel one), that ``torch.utils.flop_counter`` counts over the whole step, in a second run for
a per-image step (counting slows small operations; dense operations only: the GCN's sparse
products and the CRF, which is not torch, are not counted).

Without ``--init imagenet`` no downloaded weights are used: the CAM network trains from a random
init as the demo profile does (AdamW, batch statistics: the paper's SGD diverges without ImageNet
weights), IRNet's frozen backbone is the trained CAM network's, and DeepLab starts from a random
init.  The costs are the paper's (the shapes are); the labels' quality is not measured.

The table goes to stdout and, with every figure, to ``<out>/rehearsal.json``; each step's log
to ``<out>/logs/<step>.log``.
"""
import argparse
import contextlib
import json
import os
import resource
import runpy
import subprocess
import sys
import time
from pathlib import Path

from IRN.config import PROFILES as IRN_PROFILES

ROOT = Path(__file__).resolve().parents[1]

# The published batch sizes (paper profile), cut to the list's length when it is shorter.
CAM_BATCH, IRN_BATCH = 16, 32
# Without downloaded weights the CAM network trains as the demo profile trains it: these of the
# profile's settings, read from the profile itself, go on top of the paper profile's shapes.
SCRATCH_SETTINGS = ("backbone_weights", "cam_optimizer", "cam_frozen_bn", "cam_learning_rate", "cam_head_lr_mult",
                    "cam_power", "irn_backbone_weights")


def measure(script, argv, count_flops=True):
    """Run ``script`` with ``argv`` in this process, as ``python script argv`` would; returns its
    exit status, seconds, peak resident memory of the process, peak CUDA memory and (with
    ``count_flops``) FLOPs.  Counting puts every torch operation through Python: it adds 70 % to
    the GCN's many small operations, nothing that shows to a network's large ones."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    saved, sys.argv = sys.argv, [str(script), *argv]
    counter = FlopCounterMode(display=False) if count_flops else contextlib.nullcontext()
    status, start = 0, time.perf_counter()
    try:
        with counter:
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return {"status": status, "seconds": time.perf_counter() - start,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "peak_cuda_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            "flops": counter.get_total_flops() if count_flops else None}


def first_image_argv(argv, folder):
    """``argv`` with each list (--train_list, --infer_list, --list) cut to its first image, and
    --overwrite True: a step's FLOPs on one image."""
    argv = list(argv)
    for flag in ("--train_list", "--infer_list", "--list"):
        if flag in argv:
            listed = Path(argv[argv.index(flag) + 1])
            first = Path(folder) / f"first_of_{listed.name}"
            first.write_text(read_list(listed)[0] + "\n")
            argv[argv.index(flag) + 1] = str(first)
    return argv + ["--overwrite", "True"]


def rehearse_step(name, script, argv, unit, count, runner, folder):
    """One step's row of the table.  runner(script, argv, count_flops) -> a :func:`measure`
    result.  A training step is timed and counted in one run (its FLOPs per iteration: the total
    over ``count``); a per-image step is timed over its list without counting, then counted on
    the list's first image alone (an evaluation: not counted)."""
    if unit == "iteration":
        result = runner(script, argv, True)
        return {"step": name, "unit": unit, "count": count, **result,
                "flops_per_unit": None if result["flops"] is None else result["flops"] / count}
    result = runner(script, argv, False)
    flops = None
    if result["status"] == 0 and not name.startswith("eval"):
        counted = runner(script, first_image_argv(argv, folder), True)
        result["status"], flops = counted["status"], counted["flops"]
    return {"step": name, "unit": unit, "count": count, **result, "flops_per_unit": flops}


def read_list(path):
    return [line.split()[0] for line in Path(path).read_text().splitlines() if line.strip()]


def plan(args, data, work):
    """The steps as (name, script, argv, unit, count): count images or iterations share the time."""
    train, val = read_list(data / "train.txt"), read_list(data / "val.txt")
    cam_batch, irn_batch = min(CAM_BATCH, len(train)), min(IRN_BATCH, len(train))
    deeplab_batch = min(args.deeplab_batch, len(train))
    where = ["--voc12_root", str(data / "VOC2012"), "--cls_labels", str(data / "cls_labels.txt"),
             "--work_dir", str(work), "--device", args.device]
    irn = ["--profile", "paper", *where, "--train_list", str(data / "train.txt"), "--infer_list",
           str(data / "train.txt"), "--cam_batch_size", str(cam_batch), "--cam_num_epoches", str(args.cam_epochs),
           "--irn_batch_size", str(irn_batch), "--irn_num_epoches", str(args.irn_epochs)]
    if args.init != "imagenet":
        irn += [arg for name in SCRATCH_SETTINGS for arg in (f"--{name}", str(IRN_PROFILES["demo"][name]))]
    passes = ["train_cam", "make_cam", "eval_cam", "cam_to_ir_label", "train_irn", "make_sem_seg", "eval_sem_seg"]

    def irn_step(name, unit, count, step_pass=None):
        only = [arg for p in passes for arg in (f"--{p}_pass", str(p == (step_pass or name)))]
        return (name, "IRN/run_sample.py", irn + only, unit, count)

    gcn = ["--profile", "paper", *where, "--train_list", str(data / "train.txt"), "--max_epoch",
           str(args.gcn_epochs)]
    deeplab = ["--profile", "paper", *where, "--batch_size", str(deeplab_batch), "--iter_size",
               str(args.deeplab_iter_size)]
    if args.init != "imagenet":
        deeplab += ["--init", "none"]
    images = len(train)
    return [
        irn_step("train_cam", "iteration", args.cam_epochs * (images // cam_batch)),
        irn_step("make_cam", "image", images),
        irn_step("eval_cam", "image", images),
        irn_step("cam_to_ir_label", "image", images),
        irn_step("train_irn", "iteration", args.irn_epochs * (images // irn_batch)),
        irn_step("make_sem_seg_labels", "image", images, "make_sem_seg"),
        irn_step("eval_sem_seg", "image", images),
        ("GCN make_dataset", "GCN/make_dataset.py", gcn, "image", images),
        ("GCN train", "GCN/train.py", gcn, "image", images),
        ("GCN CRF", "GCN/CRF.py", gcn, "image", images),
        # without the end-of-training class check: its 16 predicted crops are not an iteration's cost
        ("DeepLab train", "DeepLab/train.py", [*deeplab, "--train_list", str(data / "train.txt"), "--iterations",
                                               str(args.deeplab_iterations), "--check_crops", "0"], "iteration",
         args.deeplab_iterations),
        ("DeepLab infer", "DeepLab/infer.py", [*deeplab, "--list", str(data / "val.txt")], "image", len(val)),
    ]


def gib(value):
    return "-" if value is None else f"{value / 2 ** 30:.2f}"


def table(rows, header):
    lines = [header, f"{'step':<21}{'unit':>10}{'count':>6}{'s/unit':>9}{'peak RSS GiB':>14}{'CUDA GiB':>10}"
                     f"{'GFLOP/unit':>12}"]
    for row in rows:
        per = row["seconds"] / row["count"]
        flops = "-" if row["flops_per_unit"] is None else f"{row['flops_per_unit'] / 1e9:.1f}"
        lines.append(f"{row['step']:<21}{row['unit']:>10}{row['count']:>6}{per:>9.2f}{gib(row['peak_rss_bytes']):>14}"
                     f"{gib(row['peak_cuda_bytes']):>10}{flops:>12}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="Data/rehearsal", help="data set, work dir, logs and rehearsal.json")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--init", default="none", choices=("none", "imagenet"),
                        help="none: no downloaded weights (CAM network trained as the demo does); imagenet: the "
                             "paper's recipe (ImageNet weights, and DeepLab's COCO init under <out>/work/sess)")
    parser.add_argument("--train", type=int, default=8, help="training images (VOC size)")
    parser.add_argument("--val", type=int, default=2, help="val images for DeepLab's inference")
    parser.add_argument("--cam_epochs", type=int, default=1, help="train_cam epochs (the paper: 5)")
    parser.add_argument("--irn_epochs", type=int, default=1, help="train_irn epochs (the paper: 3)")
    parser.add_argument("--gcn_epochs", type=int, default=250, help="GCN epochs per image (the paper's 250)")
    parser.add_argument("--deeplab_iterations", type=int, default=1, help="DeepLab SGD steps")
    parser.add_argument("--deeplab_batch", type=int, default=5, help="DeepLab crops per forward pass (the paper: 5)")
    parser.add_argument("--deeplab_iter_size", type=int, default=2,
                        help="DeepLab forward passes per SGD step (the paper: 2)")
    # one step in a process of its own: --measure time|flops RESULT.json SCRIPT ARGS...
    parser.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for flag in ("train", "val", "cam_epochs", "irn_epochs", "gcn_epochs", "deeplab_iterations", "deeplab_batch",
                 "deeplab_iter_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.measure:
        mode, result_path, script, *step_argv = args.measure
        result = measure(script, step_argv, count_flops=mode == "flops")
        Path(result_path).write_text(json.dumps(result))
        return result["status"]
    out = Path(args.out).resolve()
    data, work, logs = out / "data", out / "work", out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    subprocess.run([python, "-m", "wsgcn.demo_data", "--out", str(data), "--num_train", str(args.train),
                    "--num_val", str(args.val), "--image_size", "voc"], cwd=ROOT, check=True)
    cut = (f"cut: train_cam {args.cam_epochs} epoch(s), train_irn {args.irn_epochs}, DeepLab "
           f"{args.deeplab_iterations} iterations, GCN {args.gcn_epochs} epochs")
    init = ("the paper's recipe (ImageNet weights)" if args.init == "imagenet" else
            "no downloaded weights: CAM network trained as the demo does (AdamW, batch statistics), DeepLab from "
            "a random init")
    header = (f"Rehearsal of the paper profile on {args.train} + {args.val} VOC-sized images, device {args.device}; "
              f"{cut}; {init}")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rows, began = [], time.time()
    for name, script, step_argv, unit, count in plan(args, data, work):
        stem = name.replace(" ", "_")
        print(f"rehearse: {name} ...", flush=True)

        def in_a_process(script, argv, count_flops):
            result, log = logs / f"{stem}.json", logs / f"{stem}{'_flops' if count_flops else ''}.log"
            with open(log, "w") as stream:
                done = subprocess.run([python, __file__, "--measure", "flops" if count_flops else "time", str(result),
                                       str(ROOT / script), *argv], cwd=ROOT, env=env, stdout=stream,
                                      stderr=subprocess.STDOUT)
            if done.returncode != 0 or not result.is_file():
                print(f"rehearse: {name} failed (exit status {done.returncode}); its log: {log}", file=sys.stderr)
                print(log.read_text()[-3000:], file=sys.stderr)
                return {"status": done.returncode or 1, "flops": None}
            return json.loads(result.read_text())

        row = rehearse_step(name, script, step_argv, unit, count, in_a_process, logs)
        if row["status"] != 0:
            return 1
        rows.append(row)
    report = table(rows, header)
    (out / "rehearsal.json").write_text(json.dumps({"header": header, "steps": rows,
                                                    "seconds": time.time() - began}, indent=2) + "\n")
    print(report)
    print(f"rehearse: {time.time() - began:.0f} s in all; figures in {out / 'rehearsal.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
