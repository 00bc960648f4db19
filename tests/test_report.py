"""The summary table's Stage II rows: DeepLab's val labels, with the CRF, and the upper bound."""
import numpy as np

from wsgcn import report
from wsgcn.infra.io import load_label_png, save_label_png
from wsgcn.infra.layout import WorkDir
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.metrics import evaluate_label_maps, summary_line
from wsgcn.seg.voc import NUM_CLASSES


def test_stage2_rows_and_the_ratio_to_the_upper_bound(demo_root, tmp_path, capsys):
    val = demo_root / "val.txt"
    work = WorkDir(tmp_path / "work")
    out = work.deeplab(val)
    assert out == tmp_path / "work/DeepLab/val"
    for name in read_image_list(val):
        gt = load_label_png(demo_root / "VOC2012/SegmentationClassAug" / f"{name}.png")
        save_label_png(out / "CRF_Label" / f"{name}.png", gt)                     # perfect
        save_label_png(tmp_path / "gt_net" / f"{name}.png", gt)                   # perfect
        half = gt.copy()
        half[:, : gt.shape[1] // 2] = 0                                           # left half background
        save_label_png(out / "Label" / f"{name}.png", half)
    argv = ["--work_dir", str(work.root), "--voc12_root", str(demo_root / "VOC2012"), "--list", str(val),
            "--seg_val_list", str(val)]
    assert report.main(argv + ["--upper_bound", str(tmp_path / "gt_net")]) == 0  # no Stage I: not required
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"Stage II on {len(read_image_list(val))} images ({val}):"
    rows = {line[:22].strip(): float(line[22:30]) for line in lines[2:5]}
    assert rows["DeepLab + CRF"] == 100.0 and rows["DeepLab, ground truth"] == 100.0
    assert 0 < rows["DeepLab"] < 100
    assert lines[5] == f"DeepLab on the pseudo labels / on the ground truth: {rows['DeepLab']:.1f} %"
    assert np.isclose(float(lines[5].split()[-2]), rows["DeepLab"], atol=0.06)
    # One image without DeepLab's labels: the row is scored on the other three and says so; the
    # ratio would compare scores on different images, so it is not given.
    names = read_image_list(val)
    (out / "Label" / f"{names[0]}.png").unlink()
    assert report.main(argv + ["--upper_bound", str(tmp_path / "gt_net")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    three = evaluate_label_maps(out / "Label", demo_root / "VOC2012/SegmentationClassAug", names[1:], NUM_CLASSES)
    assert lines[2] == summary_line("DeepLab", three, 22)
    assert lines[5:] == [f"DeepLab: 3 of 4 images (1 without labels: {names[0]})",
                         "DeepLab on the pseudo labels / on the ground truth: not computed, the two rows score "
                         "different images"]
    for name in names[1:]:
        (out / "Label" / f"{name}.png").unlink()
    assert report.main(argv) == 1 and "no Stage II labels" in capsys.readouterr().err
