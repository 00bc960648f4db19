"""CAMs from another method: IRNet-style pickled .npy dicts and .npz archives, checked against the
data set and written as make_cam writes them."""
import numpy as np
import pytest
import torch

from IRN import import_cams
from wsgcn.infra.io import load_npz
from wsgcn.infra.layout import strided_size
from wsgcn.seg.cams import cam_argmax
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.scores import load_cams
from wsgcn.seg.voc import NUM_OBJECT_CLASSES, VOC12


def status(argv):
    try:
        import_cams.main(argv)
    except SystemExit as stop:
        return stop.code
    return 0


@pytest.fixture
def setup(demo_root, tmp_path):
    """Three training images, their classes and sizes, and argv for a source and a work dir."""
    voc = VOC12(demo_root / "VOC2012", demo_root / "cls_labels.txt")
    names = read_image_list(demo_root / "train.txt")[:3]
    (tmp_path / "list.txt").write_text("".join(f"{n}\n" for n in names))
    src, work = tmp_path / "src", tmp_path / "work"
    src.mkdir()
    argv = ["--src", str(src), "--work_dir", str(work), "--voc12_root", str(demo_root / "VOC2012"),
            "--cls_labels", str(demo_root / "cls_labels.txt"), "--list", str(tmp_path / "list.txt"),
            "--num_workers", "0", "--quiet", "True"]
    sizes = {n: voc.load_image(n).shape[:2] for n in names}
    classes = {n: np.flatnonzero(voc.class_labels(n)) for n in names}
    return names, sizes, classes, src, work, argv


def irnet_dict(classes, size, seed):
    """What IRNet's make_cam saves: keys and cam as torch tensors, high_res numpy, max-normalised."""
    rng = np.random.default_rng(seed)
    high_res = rng.random((len(classes),) + size).astype(np.float32)
    high_res /= high_res.max(axis=(1, 2), keepdims=True) + 1e-5
    cam = rng.random((len(classes),) + strided_size(size, 4)).astype(np.float32)
    cam /= cam.max(axis=(1, 2), keepdims=True) + 1e-5
    return {"keys": torch.from_numpy(classes), "cam": torch.from_numpy(cam), "high_res": high_res}


def test_irnet_pickles_need_allow_pickle_then_import_as_they_are(setup):
    names, sizes, classes, src, work, argv = setup
    for seed, name in enumerate(names):
        np.save(src / f"{name}.npy", irnet_dict(classes[name], sizes[name], seed), allow_pickle=True)
    assert status(argv) == 2 and not (work / "IRN4GCN").exists()  # refused before anything is written
    assert status(argv + ["--allow_pickle", "True"]) == 0
    for seed, name in enumerate(names):
        ours, theirs = load_npz(work / "IRN4GCN/CAM" / f"{name}.npz"), irnet_dict(classes[name], sizes[name], seed)
        np.testing.assert_array_equal(ours["keys"], classes[name])
        np.testing.assert_array_equal(ours["cam"], theirs["cam"].numpy())        # already normalised: unchanged
        np.testing.assert_array_equal(ours["high_res"], theirs["high_res"])


def test_refusal_names_the_flag(setup, capsys):
    names, sizes, classes, src, work, argv = setup
    np.save(src / f"{names[0]}.npy", irnet_dict(classes[names[0]], sizes[names[0]], 0), allow_pickle=True)
    assert status(argv) == 2
    assert "pass --allow_pickle True" in capsys.readouterr().err


def test_npz_with_other_names_background_plane_and_unnormalised_scores(setup):
    names, sizes, classes, src, work, argv = setup
    name, size = names[0], sizes[names[0]]
    rng = np.random.default_rng(3)
    scores = 7 * rng.random((len(classes[name]) + 1,) + size).astype(np.float32)  # background plane first
    np.savez(src / f"{name}.npz", labels=np.concatenate([[0], classes[name] + 1]), maps=scores)
    lst = src.parent / "one.txt"
    lst.write_text(f"{name}\n")
    argv = argv[:argv.index("--list")] + ["--list", str(lst)] + argv[argv.index("--list") + 2:]
    assert status(argv + ["--keys_key", "labels", "--high_res_key", "maps", "--cam_key", "",
                          "--keys_include_background", "True"]) == 0
    cams = load_cams(work / "IRN4GCN/CAM" / f"{name}.npz", NUM_OBJECT_CLASSES, image_size=size)
    np.testing.assert_array_equal(cams["classes"], classes[name])
    np.testing.assert_allclose(cams["high_res"], scores[1:] / (scores[1:].max(axis=(1, 2), keepdims=True) + 1e-5),
                               rtol=1e-6)
    assert cams["cam"].shape[1:] == strided_size(size, 4)  # derived from the full-size maps


def test_class_indexed_dicts_without_keys_import_as_their_classes(setup):
    """{class_index: (H, W) map}: MCTformer's pickled .npy dicts, and the same as an npz whose
    array names are the indices."""
    names, sizes, classes, src, work, argv = setup
    rng = np.random.default_rng(5)
    maps = {}
    for i, name in enumerate(names[:2]):
        maps[name] = {int(c): 5 * rng.random(sizes[name]).astype(np.float32) for c in classes[name][::-1]}
        if i == 0:
            np.save(src / f"{name}.npy", maps[name], allow_pickle=True)
        else:
            np.savez(src / f"{name}.npz", **{str(c): m for c, m in maps[name].items()})
    lst = src.parent / "two.txt"
    lst.write_text("".join(f"{n}\n" for n in names[:2]))
    argv = argv[:argv.index("--list")] + ["--list", str(lst)] + argv[argv.index("--list") + 2:]
    assert status(argv + ["--allow_pickle", "True"]) == 0
    for name in names[:2]:
        cams = load_cams(work / "IRN4GCN/CAM" / f"{name}.npz", NUM_OBJECT_CLASSES, image_size=sizes[name])
        np.testing.assert_array_equal(cams["classes"], classes[name])  # in increasing class order
        expected = np.stack([maps[name][int(c)] for c in classes[name]])
        np.testing.assert_allclose(cams["high_res"], expected / (expected.max(axis=(1, 2), keepdims=True) + 1e-5),
                                   rtol=1e-6)


def test_keys_of_another_image_fail_that_image_only(setup, capsys):
    names, sizes, classes, src, work, argv = setup
    for seed, name in enumerate(names):
        arrays = irnet_dict(classes[name], sizes[name], seed)
        np.savez(src / f"{name}.npz", keys=arrays["keys"].numpy(), cam=arrays["cam"].numpy(), high_res=arrays["high_res"])
    bad = names[1]
    wrong = np.array([c for c in range(20) if c not in classes[bad]][: len(classes[bad])])
    arrays = irnet_dict(wrong, sizes[bad], 9)
    np.savez(src / f"{bad}.npz", keys=wrong, cam=arrays["cam"].numpy(), high_res=arrays["high_res"])
    assert status(argv) == 1
    assert f"import_cams: {bad}:" in capsys.readouterr().err and "are not the image's classes" in \
        (work / "IRN4GCN/CAM/failures.txt").read_text()
    assert sorted(p.stem for p in (work / "IRN4GCN/CAM").glob("*.npz")) == sorted(set(names) - {bad})


def test_derived_cam_matches_make_cams_own(irn_run):
    """On the CAMs make_cam wrote (the original's own, see docs/parity.md), the stride-4 cam derived
    from high_res alone is make_cam's cam to a small error, and gives nearly the same labels."""
    _, work, _ = irn_run
    errors, agreement = [], []
    for path in sorted((work / "IRN4GCN/CAM").glob("*.npz")):
        cams = load_cams(path, NUM_OBJECT_CLASSES)
        derived = import_cams.strided_cam(cams["high_res"])
        errors.append(np.abs(derived - cams["cam"]).mean())
        agreement.append((cam_argmax(derived, 0.15) == cam_argmax(cams["cam"], 0.15)).mean())
    assert len(errors) >= 8 and np.mean(errors) < 0.01 and np.mean(agreement) > 0.98


def test_exported_irnet_npy_imports_back_to_the_same_cams(irn_run, demo_root, tmp_path, capsys):
    from IRN import export_cams

    cfg, work, _ = irn_run
    names = read_image_list(demo_root / "train.txt")[:3]
    (tmp_path / "list.txt").write_text("".join(f"{n}\n" for n in names))
    argv = ["--work_dir", str(work), "--list", str(tmp_path / "list.txt"), "--out", str(tmp_path / "irnet")]
    assert export_cams.main(argv) == 0
    assert capsys.readouterr().out == f"export_cams: 3 images to {tmp_path / 'irnet'}\n"
    assert export_cams.main(argv[:-2]) == 2 and "--out is required" in capsys.readouterr().err
    raw = np.load(tmp_path / "irnet" / f"{names[0]}.npy", allow_pickle=True).item()
    assert torch.is_tensor(raw["keys"]) and torch.is_tensor(raw["cam"]) and isinstance(raw["high_res"], np.ndarray)
    assert status(["--src", str(tmp_path / "irnet"), "--work_dir", str(tmp_path / "w"), "--allow_pickle", "True",
                   "--voc12_root", str(demo_root / "VOC2012"), "--cls_labels", str(demo_root / "cls_labels.txt"),
                   "--list", str(tmp_path / "list.txt"), "--num_workers", "0", "--quiet", "True"]) == 0
    for name in names:
        original, back = load_npz(work / "IRN4GCN/CAM" / f"{name}.npz"), load_npz(tmp_path / "w/IRN4GCN/CAM" / f"{name}.npz")
        for key in ("keys", "cam", "high_res"):
            np.testing.assert_array_equal(back[key], original[key])


def test_coco_seeds_import_with_their_80_class_keys(tmp_path):
    """COCO seeds (object-class keys 0..79, both layouts) into the coco14 data set, whose label
    table python -m wsgcn.coco wrote."""
    pytest.importorskip("pycocotools")
    from wsgcn import coco
    from wsgcn.demo_data import make_demo_dataset
    from wsgcn.seg.dataset import DATASETS, DataSet

    root = make_demo_dataset(tmp_path / "coco", num_train=4, num_val=1, seed=0, fmt="coco")
    assert coco.main(["--root", str(root), "--num_workers", "0", "--quiet", "True"]) == 0
    data = DataSet(DATASETS["coco14"], root)
    names = read_image_list(root / "train2014.txt")[:2]
    src, work = tmp_path / "src", tmp_path / "work"
    src.mkdir()
    # the demo's classes are COCO's first 16; toothbrush (79) added, beyond VOC's 20
    classes = {n: np.append(np.flatnonzero(data.class_labels(n)), 79) for n in names}
    sizes = {n: data.load_image(n).shape[:2] for n in names}
    table = tmp_path / "cls_labels.txt"
    table.write_text("".join(" ".join([n, *map(str, c)]) + "\n" for n, c in classes.items()))
    np.savez(src / f"{names[0]}.npz", **{k: v.numpy() if torch.is_tensor(v) else v
                                         for k, v in irnet_dict(classes[names[0]], sizes[names[0]], 0).items()})
    maps = {int(c): np.random.default_rng(1).random(sizes[names[1]]).astype(np.float32) for c in classes[names[1]]}
    np.save(src / f"{names[1]}.npy", maps, allow_pickle=True)
    (tmp_path / "list.txt").write_text("".join(f"{n}\n" for n in names))
    assert status(["--src", str(src), "--work_dir", str(work), "--dataset", "coco14", "--data_root", str(root),
                   "--cls_labels", str(table), "--list", str(tmp_path / "list.txt"), "--allow_pickle", "True",
                   "--num_workers", "0", "--quiet", "True"]) == 0
    for name in names:
        cams = load_cams(work / "IRN4GCN/CAM" / f"{name}.npz", 80, image_size=sizes[name])
        np.testing.assert_array_equal(cams["classes"], classes[name])
