"""The benchmark script runs and reports every mode (a smoke test at a tiny size, not a timing)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from GCN import bench, make_dataset
from GCN.bench import synthetic_inputs
from wsgcn.infra.layout import strided_size
from wsgcn.seg.dataset import read_image_list

ROOT = Path(__file__).resolve().parents[1]


def test_synthetic_inputs():
    inputs = synthetic_inputs(20, 26)
    assert inputs.features.shape == (160, 20, 26) and inputs.boundary.shape == (20, 26)
    labelled = inputs.partial_labels != 255
    assert 0.2 < labelled.mean() < 0.45
    assert set(np.unique(inputs.partial_labels[labelled]).tolist()) <= {0} | set((inputs.classes + 1).tolist())


def test_bench_prints_one_json_line_per_mode():
    out = subprocess.run([sys.executable, str(ROOT / "GCN/bench.py"), "--nodes", "12x14", "--epochs", "3"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["mode"] for line in lines] == ["original", "dense", "lowmem"]
    for line in lines:
        assert line["nodes"] == 168 and line["sec_per_image"] > 0 and line["peak_mb"] >= 0
        assert 0 <= line["label_agreement"] <= 1
        parts = line["prep_sec_per_image"] + line["train_sec_per_image"]
        assert line["sec_per_image"] == pytest.approx(parts, abs=2e-3)
    assert lines[0]["prep_sec_per_image"] == 0 and lines[2]["prep_sec_per_image"] > 0  # lowmem: the eigensolver
    assert lines[1]["label_agreement"] == 1.0 and lines[0]["speedup"] == 1.0


def test_bench_times_the_phases_on_a_work_directorys_own_inputs(irn_run, demo_root, capsys):
    """--work_dir: a line per listed image (its own grid), one on synthetic inputs of the first
    image's grid, then the mean; each total is its phases with --epochs epochs."""
    _, work, voc = irn_run
    where = ["--work_dir", str(work), "--voc12_root", str(demo_root / "VOC2012"), "--cls_labels",
             str(demo_root / "cls_labels.txt")]
    make_dataset.main([*where, "--train_list", str(demo_root / "val.txt"), "--num_workers", "0", "--quiet", "True"])
    names = read_image_list(demo_root / "val.txt")[:2]
    listed = demo_root / "bench_list.txt"
    listed.write_text("".join(f"{n}\n" for n in names))
    capsys.readouterr()
    before = sorted(p for p in (work / "GCN4DeepLab").rglob("*")) if (work / "GCN4DeepLab").exists() else []
    assert bench.main([*where, "--list", str(listed), "--epochs", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["inputs"] for line in lines] == ["real", "real", "synthetic", "real, mean"]
    grids = [strided_size(voc.load_gt(n).shape, 4) for n in names]
    assert [line["nodes"] for line in lines[:3]] == [grids[0][0] * grids[0][1], grids[1][0] * grids[1][1],
                                                     grids[0][0] * grids[0][1]]
    for line in lines[:3]:
        phases = line["load_s"] + line["graph_s"] + line["setup_s"] + 3 * line["epoch_s"] + line["write_s"]
        assert line["sec_per_image"] == pytest.approx(phases, abs=1e-3) and line["graph_s"] > 0
    mean_graph = (lines[0]["graph_s"] + lines[1]["graph_s"]) / 2
    assert lines[3]["images"] == 2 and lines[3]["graph_s"] == pytest.approx(mean_graph, abs=1e-3)
    after = sorted(p for p in (work / "GCN4DeepLab").rglob("*")) if (work / "GCN4DeepLab").exists() else []
    assert after == before  # the outputs are written to a temporary folder
