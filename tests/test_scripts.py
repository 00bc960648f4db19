"""Every script goes through wsgcn.infra.scripts: a typed config whose --help lists every flag, and a bad
argument that exits 2 with one line, the stage scripts and the tools alike."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import eval as eval_script
from DeepLab import infer as deeplab_infer
from DeepLab import train as deeplab_train
from DeepLab.config import DeepLabConfig
from GCN import CRF, bench, make_dataset, visualize
from GCN import train as gcn_train
from GCN.config import GCNConfig
from IRN import export_cams, import_cams, run_sample
from IRN.config import IRNConfig
from wsgcn import demo_data, report
from wsgcn.infra.scripts import bare_switches

ROOT = Path(__file__).resolve().parents[1]

SCRIPTS = {  # name: (main, config)
    "run_sample": (run_sample.main, IRNConfig), "import_cams": (import_cams.main, import_cams.ImportCamsConfig),
    "make_dataset": (make_dataset.main, GCNConfig), "GCN/train": (gcn_train.main, GCNConfig),
    "CRF": (CRF.main, GCNConfig), "DeepLab/train": (deeplab_train.main, DeepLabConfig),
    "DeepLab/infer": (deeplab_infer.main, DeepLabConfig), "eval": (eval_script.main, eval_script.EvalConfig),
    "report": (report.main, report.ReportConfig), "visualize": (visualize.main, visualize.VisualizeConfig),
    "export_cams": (export_cams.main, export_cams.ExportCamsConfig), "bench": (bench.main, bench.BenchConfig),
    "demo_data": (demo_data.main, demo_data.DemoDataConfig),
}


def parse_exit(main, argv, capsys):
    """(exit status, stdout, stderr) of a ``main`` that ends while parsing ``argv``."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_lists_every_flag(script, capsys):
    main, config = SCRIPTS[script]
    status, out, _ = parse_exit(main, ["--help"], capsys)
    assert status == 0 and out.startswith("usage:")
    assert all(f"--{field.name}" in out for field in dataclasses.fields(config))


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unknown_flag_exits_2_with_one_line(script, capsys):
    status, out, err = parse_exit(SCRIPTS[script][0], ["--no_such_flag", "1"], capsys)
    assert (status, out) == (2, "") and len(err.strip().splitlines()) == 1, err
    assert "error: unrecognized arguments: --no_such_flag 1" in err


@pytest.mark.parametrize("script, argv, words", [
    ("eval", ["--upsample", "maybe"], "argument --upsample: expected True or False, got 'maybe'"),
    ("eval", ["--list"], "argument --list: expected one argument"),
    ("report", ["--cam_eval_thres", "2"], "argument --cam_eval_thres: 2.0 is out of range: must be >= 0 and <= 1"),
    ("visualize", ["--num_images", "-1"], "argument --num_images: -1 is out of range: must be >= 0"),
    ("export_cams", ["--work_dir"], "argument --work_dir: expected one argument"),
    ("bench", ["--modes", "original,sparse"], "argument --modes: 'sparse' is not one of original, dense, lowmem"),
    ("bench", ["--epochs", "0"], "argument --epochs: 0 is out of range: must be >= 1"),
    ("bench", ["--device", "gpu"], "argument --device: 'gpu' is not one of cpu, cuda, cuda:N"),
    ("demo_data", ["--num_train", "0"], "argument --num_train: 0 is out of range: must be >= 1"),
])
def test_a_bad_value_of_a_tool_exits_2_with_one_line(script, argv, words, capsys):
    status, out, err = parse_exit(SCRIPTS[script][0], argv, capsys)
    assert (status, out) == (2, "") and len(err.strip().splitlines()) == 1, err
    assert words in err, err


@pytest.mark.parametrize("script, argv, words", [
    ("export_cams", [], "export_cams.py: error: --out is required"),
    ("bench", ["--nodes", "12"], "bench.py: error: argument --nodes: '12' is not HxW"),
])
def test_a_setting_checked_before_any_work_is_status_2_with_one_line(script, argv, words, capsys):
    assert SCRIPTS[script][0](argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith(words), err


@pytest.mark.parametrize("command, argv", [
    (["eval.py"], ["--protocol", "maybe"]),
    (["-m", "wsgcn.report"], ["--cam_eval_thres", "-1"]),
    (["GCN/visualize.py"], ["--panel_px", "1"]),
    (["IRN/export_cams.py"], ["--out"]),
    (["GCN/bench.py"], ["--batch", "0"]),
    (["-m", "wsgcn.demo_data"], ["--seed", "-1"]),
])
def test_the_documented_commands_refuse_a_bad_argument_with_one_line(command, argv):
    done = subprocess.run([sys.executable, *command, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and f"error: argument {argv[0]}" in done.stderr, done.stderr


def test_a_boolean_flag_alone_is_true():
    argv = ["--protocol", "--list", "x", "--upsample", "False", "--upsample"]
    assert bare_switches(eval_script.EvalConfig, argv) == ["--protocol", "True", "--list", "x", "--upsample", "False",
                                                           "--upsample", "True"]
    assert bare_switches(GCNConfig, ["--quiet", "--seed", "1"]) == ["--quiet", "True", "--seed", "1"]
