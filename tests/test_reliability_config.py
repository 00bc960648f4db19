"""Issue 18, "Settings out of range": every setting declares its range in its field, and a value
outside it stops the script when parsed (exit status 2, one line naming the flag, the value and
the allowed range), before anything is read or written."""
import dataclasses
import subprocess
import typing
from pathlib import Path

import pytest

from DeepLab import infer as deeplab_infer
from DeepLab import train as deeplab_train
from DeepLab.config import PROFILES as DEEPLAB_PROFILES
from DeepLab.config import DeepLabConfig
from GCN import CRF, make_dataset, visualize
from GCN import train as gcn_train
from GCN.config import PROFILES as GCN_PROFILES
from GCN.config import GCNConfig
from IRN import import_cams, run_sample
from IRN.config import PROFILES as IRN_PROFILES
from IRN.config import IRNConfig
from wsgcn.infra.config import CommonConfig, allowed_values, out_of_range

REPO = Path(__file__).resolve().parents[1]

CONFIGS = {  # every config with its profiles
    "IRN": (IRNConfig, IRN_PROFILES), "GCN": (GCNConfig, GCN_PROFILES), "DeepLab": (DeepLabConfig, DEEPLAB_PROFILES),
    "import_cams": (import_cams.ImportCamsConfig, {"paper": {}}),
    "visualize": (visualize.VisualizeConfig, visualize.PROFILES), "common": (CommonConfig, {"paper": {}}),
}
SCRIPTS = {"run_sample": run_sample.main, "GCN/train": gcn_train.main, "make_dataset": make_dataset.main,
           "CRF": CRF.main, "DeepLab/train": deeplab_train.main, "DeepLab/infer": deeplab_infer.main,
           "import_cams": import_cams.main, "visualize": visualize.main}


def assert_refused_when_parsed(script, flag, value, range_words, tmp_path, capsys):
    """``script`` with ``--flag value`` (on a work dir and data set that do not exist, so that a
    run that got past parsing would fail on them with another message) exits 2 with one line."""
    work = tmp_path / "work"
    argv = ["--work_dir", str(work), "--voc12_root", str(tmp_path / "voc"), "--device", "cpu",
            "--num_workers", "0", f"--{flag}", value]
    with pytest.raises(SystemExit) as stop:
        SCRIPTS[script](argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"--{flag}: {value}" in err.replace("'", "") and range_words in err, err  # 'gpu', -1.0
    assert not work.exists()


@pytest.mark.parametrize("script", ["GCN/train"])
def test_max_epoch_0_is_refused_when_parsed(script, tmp_path, capsys):
    """It was an UnboundLocalError in GCN/train.py."""
    assert_refused_when_parsed(script, "max_epoch", "0", ">= 1", tmp_path, capsys)


@pytest.mark.parametrize("script, flag, value, range_words", [
    ("GCN/train", "num_hid_unit", "0", ">= 1"),
    ("run_sample", "cam_num_epoches", "0", ">= 1"),
    ("DeepLab/train", "msc_scales", "-1", "each value must be > 0"),
    ("DeepLab/infer", "msc_scales", "-1", "each value must be > 0"),
] + [(script, "device", "gpu", "one of '', auto, cpu, cuda, cuda:N") for script in SCRIPTS])
def test_settings_that_gave_tracebacks_are_refused_when_parsed(script, flag, value, range_words, tmp_path, capsys):
    assert_refused_when_parsed(script, flag, value, range_words, tmp_path, capsys)


@pytest.mark.parametrize("script, flag, value, range_words", [
    ("GCN/train", "lr", "-1", "> 0"),
    ("GCN/train", "graph_rank", "0", ">= 1"),
    ("run_sample", "cam_scales", "0", "each value must be > 0"),
])
def test_settings_that_failed_every_image_are_refused_when_parsed(script, flag, value, range_words, tmp_path,
                                                                  capsys):
    assert_refused_when_parsed(script, flag, value, range_words, tmp_path, capsys)


@pytest.mark.parametrize("script, flag, value, range_words", [
    ("GCN/train", "drop_rate", "1.5", ">= 0 and < 1"),
    ("GCN/train", "batch_images", "-1", ">= 0"),
    ("GCN/train", "exp_times", "-1", ">= 0"),
    ("run_sample", "exp_times", "-1", ">= 0"),
])
def test_settings_that_were_accepted_are_refused_when_parsed(script, flag, value, range_words, tmp_path, capsys):
    assert_refused_when_parsed(script, flag, value, range_words, tmp_path, capsys)


KEYWORD_OR_FILE = "or the path of an existing file"


@pytest.mark.parametrize("script, flag, value, range_words", [
    ("GCN/train", "graph", "lowmen", "one of dense, lowmem"),  # it failed every image in the workers
    ("run_sample", "cam_optimizer", "adam", "one of sgd, adamw"),
    ("run_sample", "backbone_weights", "imagnet", f"one of imagenet, none, {KEYWORD_OR_FILE}"),
    ("run_sample", "backbone_weights", "/nonexistent/resnet50.pth", f"one of imagenet, none, {KEYWORD_OR_FILE}"),
    ("run_sample", "irn_backbone_weights", "cma", f"one of imagenet, none, cam, {KEYWORD_OR_FILE}"),
    ("DeepLab/train", "backbone", "resnet", "one of caffe, torchvision"),
    ("DeepLab/infer", "backbone", "resnet", "one of caffe, torchvision"),
    ("DeepLab/train", "init", "imagnet", f"one of '', imagenet, cam, none, {KEYWORD_OR_FILE}"),
    ("DeepLab/train", "init", "/nonexistent/init.pth", f"one of '', imagenet, cam, none, {KEYWORD_OR_FILE}"),
])
def test_enumerated_settings_are_refused_when_parsed(script, flag, value, range_words, tmp_path, capsys):
    assert_refused_when_parsed(script, flag, value, range_words, tmp_path, capsys)


def test_the_allowed_values_come_from_what_the_code_knows():
    from DeepLab.net.deeplab_v2 import BACKBONES
    from GCN.graph import GRAPHS

    fields = {f.name: f for f in dataclasses.fields(GCNConfig) + dataclasses.fields(DeepLabConfig)}
    assert fields["graph"].metadata["choices"] == tuple(GRAPHS)
    assert fields["backbone"].metadata["choices"] == tuple(BACKBONES)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu", "cuda:-1", "cuda:", "CPU"])
def test_device_names_outside_the_allowed_ones_are_refused_when_parsed(device, tmp_path, capsys):
    assert_refused_when_parsed("make_dataset", "device", device, "cuda:N", tmp_path, capsys)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_default_and_profile_is_within_its_declared_range(name):
    config_cls, profiles = CONFIGS[name]
    for profile_name, profile in {"defaults": {}, **profiles}.items():
        cfg = config_cls(**profile)
        for field in dataclasses.fields(config_cls):
            assert out_of_range(field, getattr(cfg, field.name)) is None, (name, profile_name, field.name)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_number_setting_declares_its_range(name):
    config_cls = CONFIGS[name][0]
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        kind = hints[field.name]
        item = typing.get_args(kind)[0] if typing.get_origin(kind) is tuple else kind
        if item in (int, float):
            assert allowed_values(field), f"{name}: --{field.name} has no declared range"


def test_help_shows_the_range(capsys):
    with pytest.raises(SystemExit) as stop:
        gcn_train.main(["--help"])
    assert stop.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert "full-batch training epochs per image (>= 1; default: 250)" in shown
    assert "dropout after the first layer (>= 0 and < 1; default: 0.3)" in shown
    assert "one of '', auto, cpu, cuda, cuda:N (N = 0, 1, ...); default: ''" in shown
    with pytest.raises(SystemExit):
        run_sample.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "(one of imagenet, none, or the path of an existing file; default: 'imagenet')" in shown


@pytest.mark.parametrize("flag, allowed", [("--stage", "1, 2 or all"), ("--profile", "paper, coco or demo")])
def test_train_sh_flag_without_a_value_is_refused(flag, allowed):
    done = subprocess.run(["bash", "train.sh", flag], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "unbound" not in done.stderr, done.stderr
    assert flag in done.stderr and allowed in done.stderr, done.stderr
    assert done.stdout == ""
