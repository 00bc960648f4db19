"""The benchmark script runs and reports every mode (a smoke test at a tiny size, not a timing)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from GCN.bench import synthetic_inputs

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
        assert line["sec_per_image"] == pytest.approx(line["prep_sec_per_image"] + line["train_sec_per_image"], abs=2e-3)
    assert lines[0]["prep_sec_per_image"] == 0 and lines[2]["prep_sec_per_image"] > 0  # lowmem: the eigensolver
    assert lines[1]["label_agreement"] == 1.0 and lines[0]["speedup"] == 1.0
