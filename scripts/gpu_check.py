"""Every figure that needs a GPU, in one run (at most 8 minutes on one GPU): the first thing to
run on a new GPU box.

    bash scripts/gpu_check.sh [--out Data/gpu_check] [--device cuda]

In order, each part in a process of its own:

1. the CUDA tests (``tests/test_cuda.py``: the same numbers on CUDA as on the CPU);
2. ``GCN/bench.py --device cuda --modes lowmem --batch 32``: GCN images per second;
3. the rehearsal on CUDA (``scripts/rehearse.py``: every step of both stages at VOC size with the
   paper profile's shapes), giving make_cam's and make_sem_seg_labels' images per second;
4. DeepLab-v2 ResNet-101 training on the rehearsal's labels (batch 5, crop 321, MSC) in fp32,
   with ``--amp`` and with ``--channels_last``: iterations per second and peak memory.

Writes ``<out>/gpu_check.json`` (every figure, and the rehearsal's table) and prints a table.
A part that fails is reported as such and the others still run; the exit status is 1 then.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEEPLAB_ITERATIONS = 20
DEEPLAB_VARIANTS = {"fp32": [], "amp": ["--amp", "True"], "channels_last": ["--channels_last", "True"]}


def run(cmd, log, env=None):
    """Run ``cmd`` from the repository root, its output to ``log``; returns (exit status, output)."""
    with open(log, "w") as stream:
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=stream, stderr=subprocess.STDOUT)
    return done.returncode, Path(log).read_text()


def cuda_tests(out, env):
    status, text = run([sys.executable, "-m", "pytest", "-q", "tests/test_cuda.py"], out / "cuda_tests.log", env)
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)", text)}
    return {"status": status, **counts}


def gcn_bench(out, device, env):
    status, text = run([sys.executable, "GCN/bench.py", "--device", device, "--modes", "lowmem", "--batch", "32"],
                       out / "gcn_bench.log", env)
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    if status or not lines:
        return {"status": status or 1}
    row = lines[-1]
    return {"status": 0, "images_per_s": 1.0 / row["sec_per_image"], "sec_per_image": row["sec_per_image"],
            "peak_gib": row["peak_mb"] / 1024}


def rehearsal(out, device, env):
    status, _ = run([sys.executable, "scripts/rehearse.py", "--out", str(out / "rehearsal"), "--device", device],
                    out / "rehearsal.log", env)
    path = out / "rehearsal" / "rehearsal.json"
    if status or not path.is_file():
        return {"status": status or 1}
    return {"status": 0, **json.loads(path.read_text())}


def deeplab_training(out, device, env, variant, flags):
    """DeepLab/train.py on the rehearsal's data and labels with the paper profile's shapes and a
    random init; iterations/s from the script's own timing of its loop (model building and the
    list's screening left out)."""
    data, work = out / "rehearsal" / "data", out / "rehearsal" / "work"
    result = out / f"deeplab_{variant}.json"
    argv = ["--profile", "paper", "--voc12_root", str(data / "VOC2012"), "--cls_labels", str(data / "cls_labels.txt"),
            "--work_dir", str(work), "--device", device, "--train_list", str(data / "train.txt"), "--init", "none",
            "--iterations", str(DEEPLAB_ITERATIONS), "--weights_name", f"sess/deeplab_{variant}.pth", *flags]
    command = [sys.executable, "scripts/rehearse.py", "--measure", "time", str(result), "DeepLab/train.py"]
    status, text = run([*command, *argv], out / f"deeplab_{variant}.log", env)
    timed = re.search(r"deeplab train: (\d+) iterations in (\d+) s", text)
    if status or not timed or not result.is_file():
        return {"status": status or 1}
    measured = json.loads(result.read_text())
    iterations, seconds = int(timed.group(1)), max(int(timed.group(2)), 1)
    return {"status": 0, "iterations_per_s": iterations / seconds, "peak_cuda_gib": gib(measured["peak_cuda_bytes"]),
            "peak_rss_gib": gib(measured["peak_rss_bytes"])}


def gib(value):
    return None if value is None else value / 2 ** 30


def rehearsal_rate(report, step):
    """Images per second of a per-image step of the rehearsal."""
    for row in report.get("steps", []):
        if row["step"] == step:
            return row["count"] / row["seconds"]
    return None


def summary(figures):
    def number(value, unit=""):
        return "failed" if value is None else f"{value:.2f}{unit}"

    tests = figures["cuda_tests"]
    lines = [f"{'figure':<44}value",
             f"{'CUDA tests':<44}{tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, "
             f"{tests.get('skipped', 0)} skipped",
             f"{'GCN lowmem, batch 32 (images/s)':<44}{number(figures['gcn'].get('images_per_s'))}",
             f"{'GCN lowmem, batch 32, peak (GiB)':<44}{number(figures['gcn'].get('peak_gib'))}"]
    for step in ("make_cam", "make_sem_seg_labels", "GCN train", "DeepLab infer"):
        lines.append(f"{step + ' (images/s, rehearsal)':<44}{number(rehearsal_rate(figures['rehearsal'], step))}")
    for variant in DEEPLAB_VARIANTS:
        row = figures["deeplab"][variant]
        lines.append(f"{'DeepLab train ' + variant + ' (it/s; peak GiB)':<44}"
                     f"{number(row.get('iterations_per_s'))}; {number(row.get('peak_cuda_gib'))}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="Data/gpu_check", help="logs, the rehearsal and gpu_check.json")
    parser.add_argument("--device", default="cuda", help="cuda or cuda:N")
    args = parser.parse_args(argv)
    if not args.device.startswith("cuda"):
        parser.error(f"--device {args.device!r}: the GPU check runs on cuda or cuda:N")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    began = time.time()
    figures = {"device": args.device}
    for name, part in (("cuda_tests", lambda: cuda_tests(out, env)), ("gcn", lambda: gcn_bench(out, args.device, env)),
                       ("rehearsal", lambda: rehearsal(out, args.device, env))):
        print(f"gpu_check: {name} ...", flush=True)
        figures[name] = part()
    figures["deeplab"] = {}
    for variant, flags in DEEPLAB_VARIANTS.items():
        print(f"gpu_check: DeepLab training, {variant} ...", flush=True)
        figures["deeplab"][variant] = (deeplab_training(out, args.device, env, variant, flags)
                                       if figures["rehearsal"]["status"] == 0 else {"status": "no rehearsal"})
    figures["seconds"] = time.time() - began
    (out / "gpu_check.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(summary(figures))
    print(f"gpu_check: {figures['seconds']:.0f} s; figures in {out / 'gpu_check.json'}, logs beside it")
    parts = [figures["cuda_tests"], figures["gcn"], figures["rehearsal"], *figures["deeplab"].values()]
    return 0 if all(part.get("status") == 0 for part in parts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
