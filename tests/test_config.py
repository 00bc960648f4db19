import dataclasses

import pytest

from IRN.config import PROFILES, IRNConfig
from wsgcn.config import parse_config


def test_defaults_are_the_published_ones():
    cfg = parse_config(IRNConfig, PROFILES, [])
    assert cfg.cam_batch_size == 16 and cfg.cam_num_epoches == 5 and cfg.cam_learning_rate == 0.1
    assert cfg.cam_scales == (1.0, 0.5, 1.5, 2.0) and cfg.conf_fg_thres == 0.30 and cfg.conf_bg_thres == 0.05
    assert cfg.irn_batch_size == 32 and cfg.irn_num_epoches == 3 and cfg.beta == 10 and cfg.exp_times == 8
    assert cfg.sem_seg_bg_thres == 0.25 and cfg.cam_eval_thres == (0.15,) and cfg.work_dir == "Data"


def test_flags_profile_and_booleans():
    cfg = parse_config(IRNConfig, PROFILES, ["--profile", "demo", "--make_cam_pass", "False",
                                             "--cam_scales", "1.0", "0.5", "--cam_crop_size", "96"])
    assert cfg.make_cam_pass is False and cfg.train_cam_pass is True
    assert cfg.cam_scales == (1.0, 0.5) and cfg.cam_crop_size == 96  # explicit flag beats the profile
    assert cfg.backbone_weights == "none" and cfg.cam_batch_size == PROFILES["demo"]["cam_batch_size"]
    with pytest.raises(SystemExit):
        parse_config(IRNConfig, PROFILES, ["--make_cam_pass", "maybe"])


def test_every_profile_key_is_a_field():
    names = {f.name for f in dataclasses.fields(IRNConfig)}
    for profile in PROFILES.values():
        assert set(profile) <= names
