"""scripts/rehearse.py, the paper profile's path at VOC size, in its CI form: 2 VOC-sized images,
one iteration of each training step (batches cut to the list, DeepLab's to 1 x 1), 5 GCN epochs;
every step of both stages with the paper's shapes, run in this process."""
import importlib.util
from pathlib import Path

from wsgcn.demo_data import make_demo_dataset
from wsgcn.infra.io import load_label_png, load_npz
from wsgcn.infra.layout import strided_size
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.voc import VOC12

ROOT = Path(__file__).parents[1]
spec = importlib.util.spec_from_file_location("rehearse", ROOT / "scripts/rehearse.py")
rehearse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rehearse)


def test_every_step_of_the_paper_path_runs_at_voc_size(tmp_path):
    args = rehearse.parse_args(["--train", "2", "--val", "1", "--gcn_epochs", "5", "--deeplab_batch", "1",
                                "--deeplab_iter_size", "1"])
    data, work = make_demo_dataset(tmp_path / "data", 2, 1, image_size="voc"), tmp_path / "work"
    rows = {}

    def in_this_process(script, argv, count_flops):
        return rehearse.measure(ROOT / script, [*argv, "--num_workers", "0", "--quiet", "True"], count_flops)

    for name, script, argv, unit, count in rehearse.plan(args, data, work):
        rows[name] = rehearse.rehearse_step(name, script, argv, unit, count, in_this_process, tmp_path)
        assert rows[name]["status"] == 0, name
    assert list(rows) == ["train_cam", "make_cam", "eval_cam", "cam_to_ir_label", "train_irn", "make_sem_seg_labels",
                          "eval_sem_seg", "GCN make_dataset", "GCN train", "GCN CRF", "DeepLab train", "DeepLab infer"]

    voc = VOC12(data / "VOC2012")
    train, val = read_image_list(data / "train.txt"), read_image_list(data / "val.txt")
    for name in train:
        size = voc.load_gt(name).shape
        assert max(size) == 500
        cams = load_npz(work / "IRN4GCN/CAM" / f"{name}.npz")
        assert cams["high_res"].shape[1:] == size and cams["cam"].shape[1:] == strided_size(size, 4)
        for folder in ("IRN4GCN/SEM_SEG", "GCN4DeepLab/Label", "GCN4DeepLab/CRF_Label"):
            assert load_label_png(work / folder / f"{name}.png").shape == size, folder
    for folder in ("Label", "CRF_Label"):
        assert load_label_png(work / "DeepLab/val" / folder / f"{val[0]}.png").shape == voc.load_gt(val[0]).shape

    # The counted FLOPs show the paper's shapes: a crop of 512 through the CAM network (ResNet-50,
    # last stage at stride 1: ~150 GFLOP forward and backward; a crop of 256 would be a quarter),
    # 4 scales and flips of a 500-pixel image in make_cam (counted on the first image alone),
    # DeepLab-v2 ResNet-101 with MSC on a crop of 321 (~800 GFLOP forward and backward).
    per = {name: (row["flops_per_unit"] or 0) / 1e9 for name, row in rows.items()}
    assert per["eval_cam"] == per["eval_sem_seg"] == 0  # evaluations are not counted
    assert 100 < per["train_cam"] / 2 < 250, per
    assert 400 < per["make_cam"] < 900, per
    assert 500 < per["DeepLab train"] < 1200, per
    assert per["make_sem_seg_labels"] > 100 and per["DeepLab infer"] > 200, per
    report = rehearse.table(list(rows.values()), "header")
    assert len(report.splitlines()) == 2 + 12 and all(r["peak_rss_bytes"] > 0 for r in rows.values())
