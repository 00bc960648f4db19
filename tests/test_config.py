import dataclasses

import pytest

from DeepLab.config import PROFILES as DEEPLAB_PROFILES
from DeepLab.config import DeepLabConfig
from IRN.config import PROFILES, IRNConfig
from wsgcn.infra.config import field, parse_config


def test_defaults_are_the_published_ones():
    cfg = parse_config(IRNConfig, PROFILES, [])
    assert cfg.cam_batch_size == 16 and cfg.cam_num_epoches == 5 and cfg.cam_learning_rate == 0.1
    assert cfg.cam_scales == (1.0, 0.5, 1.5, 2.0) and cfg.conf_fg_thres == 0.30 and cfg.conf_bg_thres == 0.05
    assert cfg.irn_batch_size == 32 and cfg.irn_num_epoches == 3 and cfg.beta == 10 and cfg.exp_times == 8
    assert cfg.sem_seg_bg_thres == 0.25 and cfg.cam_eval_thres == (0.15,) and cfg.work_dir == "Data"
    assert cfg.cam_head_lr_mult == 10 and cfg.cam_power == 1  # IRNet's head rate and its CAMs as they come


def test_flags_profile_and_booleans():
    cfg = parse_config(IRNConfig, PROFILES, ["--profile", "demo", "--make_cam_pass", "False",
                                             "--cam_scales", "1.0", "0.5", "--cam_crop_size", "96"])
    assert cfg.make_cam_pass is False and cfg.train_cam_pass is True
    assert cfg.cam_scales == (1.0, 0.5) and cfg.cam_crop_size == 96  # explicit flag beats the profile
    assert cfg.backbone_weights == "none" and cfg.cam_batch_size == PROFILES["demo"]["cam_batch_size"]
    assert cfg.cam_head_lr_mult == 3 and cfg.cam_power == 3  # the demo's CAMs from scratch (docs/demo.md)
    with pytest.raises(SystemExit):
        parse_config(IRNConfig, PROFILES, ["--make_cam_pass", "maybe"])


def test_deeplab_inference_averages_the_mirror_image_in_the_demo_profile_alone():
    # kazuto1011's test has no flip; the demo's 150 px images do better with it (docs/demo.md)
    assert parse_config(DeepLabConfig, DEEPLAB_PROFILES, []).flip is False
    assert parse_config(DeepLabConfig, DEEPLAB_PROFILES, ["--profile", "demo"]).flip is True
    assert parse_config(DeepLabConfig, DEEPLAB_PROFILES, ["--profile", "demo", "--flip", "False"]).flip is False


def test_every_profile_key_is_a_field():
    names = {f.name for f in dataclasses.fields(IRNConfig)}
    for profile in PROFILES.values():
        assert set(profile) <= names


@dataclasses.dataclass(frozen=True)
class RangedConfig:
    epochs: int = field(1, "epochs", low=1)
    rate: float = field(0.5, "a rate", low=0, below=1)
    scales: tuple[float, ...] = field((1.0,), "scales", above=0)
    device: str = field("", "where", choices=("", "cpu", "cuda:N"))


def parse_error(argv, capsys):
    """The one line (and exit status 2) with which ``argv`` is refused."""
    with pytest.raises(SystemExit) as stop:
        parse_config(RangedConfig, {"paper": {}}, argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_declared_range_bounds_a_number_and_every_item_of_a_tuple(capsys):
    cfg = parse_config(RangedConfig, {"paper": {}}, ["--epochs", "1", "--rate", "0", "--scales", "0.5", "2"])
    assert (cfg.epochs, cfg.rate, cfg.scales) == (1, 0.0, (0.5, 2.0))  # the inclusive bounds are allowed
    assert parse_error(["--epochs", "0"], capsys).endswith("argument --epochs: 0 is out of range: must be >= 1")
    assert parse_error(["--rate", "1"], capsys).endswith("argument --rate: 1.0 is out of range: must be >= 0 and < 1")
    assert parse_error(["--scales", "1", "0"], capsys).endswith(
        "argument --scales: 0.0 is out of range: each value must be > 0")
    for not_finite in ("nan", "inf"):
        assert f"argument --scales: {not_finite} is out of range" in parse_error(["--scales", not_finite], capsys)


def test_a_choice_name_N_stands_for_every_index(capsys):
    for device in ("", "cpu", "cuda:0", "cuda:12"):
        assert parse_config(RangedConfig, {"paper": {}}, ["--device", device]).device == device
    for device in ("cuda", "cuda:x", "cuda:-1", "cuda:", "gpu"):
        assert parse_error(["--device", device], capsys).endswith(
            f"argument --device: {device!r} is not one of '', cpu, cuda:N (N = 0, 1, ...)")


def test_device_takes_the_documented_names():
    for device in ("", "auto", "cpu", "cuda", "cuda:0", "cuda:3"):
        assert parse_config(IRNConfig, PROFILES, ["--device", device]).device == device


def test_a_profile_value_out_of_range_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_config(RangedConfig, {"paper": {}, "bad": dict(rate=2.0)}, ["--profile", "bad"])
    assert "argument --rate: 2.0 is out of range" in capsys.readouterr().err


def test_parser_errors_are_one_line_without_the_usage(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_config(IRNConfig, PROFILES, ["--cam_batch_size", "many"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "usage:" not in err
    assert "error: argument --cam_batch_size: invalid int value: 'many'" in err


@dataclasses.dataclass(frozen=True)
class WeightsConfig:
    weights: str = field("imagenet", "init", choices=("imagenet", "none"), or_path=True)


def test_a_keyword_or_path_setting_takes_its_keywords_or_an_existing_file(tmp_path, capsys):
    weights = tmp_path / "resnet50.pth"
    weights.write_bytes(b"")  # its contents are read later, by the step that loads it
    for value in ("imagenet", "none", str(weights)):
        assert parse_config(WeightsConfig, {"paper": {}}, ["--weights", value]).weights == value
    for value in ("imagnet", str(tmp_path / "missing.pth"), str(tmp_path)):  # a typo, a missing file, a folder
        with pytest.raises(SystemExit) as stop:
            parse_config(WeightsConfig, {"paper": {}}, ["--weights", value])
        err = capsys.readouterr().err.strip()
        assert stop.value.code == 2 and len(err.splitlines()) == 1, err
        assert err.endswith(f"argument --weights: {value!r} is not one of imagenet, none, or the path of an "
                            f"existing file")


@pytest.mark.parametrize("flag, value, allowed", [
    ("backbone_weights", "imagnet", "one of imagenet, none, or the path of an existing file"),
    ("irn_backbone_weights", "CAM", "one of imagenet, none, cam, or the path of an existing file"),
    ("cam_optimizer", "adam", "one of sgd, adamw"),
])
def test_irn_enumerated_settings_are_refused_when_parsed(flag, value, allowed, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_config(IRNConfig, PROFILES, [f"--{flag}", value])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and err.endswith(f"argument --{flag}: {value!r} is not {allowed}"), err
