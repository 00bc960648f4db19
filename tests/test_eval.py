import subprocess
import sys
from pathlib import Path

import numpy as np

from wsgcn.io import save_label_png

ROOT = Path(__file__).resolve().parents[1]


def run_eval(*args):
    return subprocess.run([sys.executable, str(ROOT / "eval.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_eval_cli(tmp_path):
    gt = np.zeros((5, 7), np.uint8)
    gt[1:4, 2:6] = 15
    pred = gt.copy()
    pred[1, 2:6] = 0  # 4 person pixels missed
    save_label_png(tmp_path / "gt" / "x.png", gt)
    save_label_png(tmp_path / "pred" / "x.png", pred)
    (tmp_path / "list.txt").write_text("x\n")
    out = run_eval("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--list", tmp_path / "list.txt")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    # background IoU 23/27, person IoU 8/12
    assert lines[-1] == f"mIoU: {100 * (23 / 27 + 8 / 12) / 2:.2f}"
    assert any(line.split() == ["person", "66.67"] for line in lines)


def test_eval_cli_names_missing_predictions(tmp_path):
    (tmp_path / "list.txt").write_text("x\ny\n")
    (tmp_path / "pred").mkdir()
    out = run_eval("--pred", tmp_path / "pred", "--gt", tmp_path, "--list", tmp_path / "list.txt")
    assert out.returncode == 1
    assert "2 of 2 predictions missing" in out.stderr and "x, y" in out.stderr
    assert "Traceback" not in out.stderr
