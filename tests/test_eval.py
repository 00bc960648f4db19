import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsgcn.infra.io import save_label_png
from wsgcn.seg.metrics import confusion_matrix
from wsgcn.seg.voc import CLASS_NAMES, NUM_CLASSES

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


def hand_made_case(tmp_path):
    """One 5 x 7 image: person (15) in a background field, 4 person pixels predicted background,
    2 background pixels predicted cat (8), one void pixel; returns (gt, pred, eval arguments)."""
    gt = np.zeros((5, 7), np.uint8)
    gt[1:4, 2:6] = 15
    gt[0, 0] = 255
    pred = gt.copy()
    pred[0, 0] = 0
    pred[1, 2:6] = 0
    pred[4, 5:7] = 8
    save_label_png(tmp_path / "gt" / "x.png", gt)
    save_label_png(tmp_path / "pred" / "x.png", pred)
    (tmp_path / "list.txt").write_text("x\n")
    return gt, pred, ["--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--list", tmp_path / "list.txt"]


def test_eval_writes_the_confusion_matrix(tmp_path):
    gt, pred, args = hand_made_case(tmp_path)
    csv_path, png_path = tmp_path / "out" / "conf.csv", tmp_path / "out" / "conf.png"
    out = run_eval(*args, "--confusion_csv", csv_path, "--confusion_png", png_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == run_eval(*args).stdout  # the printed table is unchanged
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 22 and all(len(r) == 22 for r in rows)
    assert rows[0] == ["gt\\pred"] + CLASS_NAMES and [r[0] for r in rows[1:]] == CLASS_NAMES
    counts = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_array_equal(counts, confusion_matrix(gt, pred, NUM_CLASSES))
    assert counts[0, 0] == 20 and counts[0, 8] == 2 and counts[15, 0] == 4 and counts[15, 15] == 8
    assert counts.sum() == 34  # 35 pixels, the void one skipped
    assert png_path.stat().st_size > 0
    with Image.open(png_path) as img:
        img.verify()
        assert img.format == "PNG" and img.size[0] > 500 and img.size[1] > 500
    assert sorted(p.name for p in png_path.parent.iterdir()) == ["conf.csv", "conf.png"]  # no temporary left


def test_eval_needs_matplotlib_only_for_the_picture(tmp_path):
    _, _, args = hand_made_case(tmp_path)
    # matplotlib made unimportable: eval, the metrics and the CSV still work; the picture is a clear error.
    script = ("import sys; sys.modules['matplotlib'] = None; sys.path.insert(0, sys.argv[1]); import eval; "
              "sys.exit(eval.main(sys.argv[2:]))")
    base = [sys.executable, "-c", script, str(ROOT), *map(str, args)]
    out = subprocess.run(base + ["--confusion_csv", str(tmp_path / "c.csv")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "c.csv").is_file()
    out = subprocess.run(base + ["--confusion_png", str(tmp_path / "c.png")], capture_output=True, text=True, cwd=ROOT)
    # a package missing on the machine: nothing evaluated, one line, exit status 2
    assert out.returncode == 2 and "needs matplotlib" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert out.stdout == "" and not (tmp_path / "c.png").exists()


def test_eval_protocol_and_json(tmp_path):
    gt, pred, args = hand_made_case(tmp_path)
    # background: TP 20, gt 22 (the void pixel skipped), pred 24 (20 + 4 missed person pixels), union 26
    # cat (8):     TP 0,  gt 0,  pred 2,  union 2  -> precision 0, recall undefined, FP 1, FN 0
    # person (15): TP 8,  gt 12, pred 8,  union 12 -> precision 1, recall 8/12, FP 0, FN 4/12
    out = run_eval(*args, "--protocol", "--json", tmp_path / "out" / "scores.json")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    miou = (20 / 26 + 0 + 8 / 12) / 3
    assert lines[-1] == f"mIoU: {100 * miou:.2f}"
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:23]}
    assert rows["background"] == [f"{100 * 20 / 26:.2f}", f"{100 * 20 / 24:.2f}", f"{100 * 20 / 22:.2f}",
                                  f"{100 * 4 / 26:.2f}", f"{100 * 2 / 26:.2f}"]
    assert rows["cat"] == ["0.00", "0.00", "-", "100.00", "0.00"]
    assert rows["person"] == ["66.67", "100.00", "66.67", "0.00", "33.33"]
    assert rows["dog"] == ["-"] * 5
    assert lines[-5:-1] == [f"FP background {100 * 4 / 26:>8.2f}", f"FN background {100 * 2 / 26:>8.2f}",
                            "FP objects       50.00", "FN objects       16.67"]  # means of cat and person
    record = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert record["images"] == 1 and record["pred"] == str(tmp_path / "pred")
    assert record["miou"] == pytest.approx(miou) and record["pixel_accuracy"] == pytest.approx(28 / 34)
    assert record["fp_background"] == pytest.approx(4 / 26) and record["fn_background"] == pytest.approx(2 / 26)
    assert record["fp_objects"] == pytest.approx(0.5) and record["fn_objects"] == pytest.approx(1 / 6)
    classes = {c["name"]: c for c in record["classes"]}
    assert list(classes) == CLASS_NAMES
    assert classes["person"] == {"name": "person", "iou": pytest.approx(2 / 3), "precision": 1.0,
                                 "recall": pytest.approx(2 / 3), "fp": 0.0, "fn": pytest.approx(1 / 3)}
    assert classes["cat"]["recall"] is None and classes["dog"]["iou"] is None
    np.testing.assert_array_equal(record["confusion"], confusion_matrix(gt, pred, NUM_CLASSES))
    # Without --protocol the table is the plain one, the JSON the same.
    plain = run_eval(*args, "--json", tmp_path / "plain.json")
    assert plain.stdout == run_eval(*args).stdout and len(plain.stdout.splitlines()) == len(lines) - 4
    assert json.loads((tmp_path / "plain.json").read_text()) == record


def test_eval_names_missing_ground_truth(tmp_path):
    _, _, args = hand_made_case(tmp_path)
    (tmp_path / "gt" / "x.png").unlink()
    out = run_eval(*args)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "1 of 1 ground-truth label maps missing" in out.stderr and out.stderr.strip().endswith(": x")


def test_eval_switches_are_given_alone_or_with_a_value(tmp_path, capsys):
    """--upsample and --protocol, documented as switches, also take True/False as every boolean flag."""
    import eval as eval_script

    gt, pred, args = hand_made_case(tmp_path)
    save_label_png(tmp_path / "pred" / "x.png", pred[::2, ::2])  # 3 x 4: smaller than its 5 x 7 ground truth
    args = [str(a) for a in args]
    assert eval_script.main(args) == 1 and "--upsample" in capsys.readouterr().err
    assert eval_script.main(args + ["--upsample", "--protocol"]) == 0
    alone = capsys.readouterr().out
    assert eval_script.main(args + ["--upsample", "True", "--protocol", "True"]) == 0
    assert capsys.readouterr().out == alone and "FN objects" in alone
    assert eval_script.main(args + ["--protocol", "False", "--upsample"]) == 0
    assert "FN objects" not in capsys.readouterr().out
