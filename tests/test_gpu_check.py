"""scripts/gpu_check.py, for what a CPU can check: it refuses the CPU, reads each part's output
(the DeepLab line from the real script), tabulates the figures, and reports a failed part."""
import importlib.util
import json
from pathlib import Path

import pytest
from test_deeplab_train import train_argv

from DeepLab import train as deeplab_train

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts/gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def test_the_cpu_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        gpu_check.main(["--device", "cpu"])
    assert stop.value.code == 2 and "runs on cuda" in capsys.readouterr().err


@pytest.fixture
def deeplab_line(demo_root, tmp_path, capsys):
    """What DeepLab/train.py prints at the end of a training (one iteration on the CPU)."""
    deeplab_train.main(train_argv(demo_root, tmp_path / "work", "--iterations", "1", "--init", "none"))
    return capsys.readouterr().out


def fake_parts(deeplab_out, failing=()):
    """A stand-in for gpu_check.run: canned output of each part, as the real commands print it."""
    def run(cmd, log, env=None):
        name = Path(log).stem
        if name in failing:
            return 1, "boom"
        if name == "cuda_tests":
            return 0, "8 passed in 12.3s"
        if name == "gcn_bench":
            return 0, json.dumps({"mode": "lowmem", "sec_per_image": 0.05, "peak_mb": 2048.0}) + "\n"
        if name == "rehearsal":
            report = Path(cmd[cmd.index("--out") + 1]) / "rehearsal.json"
            report.parent.mkdir(parents=True, exist_ok=True)
            steps = [{"step": s, "count": 8, "seconds": 4.0} for s in ("make_cam", "make_sem_seg_labels", "GCN train")]
            report.write_text(json.dumps({"steps": steps + [{"step": "DeepLab infer", "count": 2, "seconds": 1.0}]}))
            return 0, ""
        Path(cmd[cmd.index("--measure") + 2]).write_text(json.dumps({"peak_cuda_bytes": 3 * 2 ** 30,
                                                                      "peak_rss_bytes": 2 ** 30}))
        return 0, deeplab_out
    return run


def test_figures_and_table(deeplab_line, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "run", fake_parts(deeplab_line))
    assert gpu_check.main(["--out", str(tmp_path / "check")]) == 0
    figures = json.loads((tmp_path / "check/gpu_check.json").read_text())
    assert figures["cuda_tests"] == {"status": 0, "passed": 8}
    assert figures["gcn"]["images_per_s"] == pytest.approx(20.0) and figures["gcn"]["peak_gib"] == 2.0
    for variant in ("fp32", "amp", "channels_last"):
        row = figures["deeplab"][variant]
        assert row["status"] == 0 and row["iterations_per_s"] > 0 and row["peak_cuda_gib"] == 3.0
    table = capsys.readouterr().out
    assert "8 passed, 0 failed" in table and "make_cam (images/s, rehearsal)" in table and " 2.00" in table


def test_a_failed_part_is_reported_and_the_others_run(deeplab_line, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "run", fake_parts(deeplab_line, failing={"gcn_bench"}))
    assert gpu_check.main(["--out", str(tmp_path / "check")]) == 1
    figures = json.loads((tmp_path / "check/gpu_check.json").read_text())
    assert figures["gcn"] == {"status": 1} and figures["deeplab"]["amp"]["status"] == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("GCN lowmem, batch 32 (images/s)")]
    assert len(row) == 1 and row[0].split()[-1] == "failed", row
