"""DeepLab/infer.py on the demo set with a random depth-50 network: what it writes, its formula
(upsample, softmax, argmax; flip; CRF) against a computation by hand, test images, re-runs,
torchrun, and a checkpoint of the wrong format."""
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_distributed import same_npz_folders, torchrun

import eval as eval_script
from DeepLab import infer
from DeepLab.config import DeepLabConfig
from DeepLab.datasets import chw, input_array
from DeepLab.net.deeplab_v2 import aspp_of, deeplab_v2
from wsgcn.infra.io import load_label_png, load_npz
from wsgcn.seg.crf import CRFParams, dense_crf
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.voc import VOC12

CFG = DeepLabConfig(backbone="torchvision", depth=50)
# kazuto1011/deeplab-pytorch's configs/voc12.yaml, CRF section
DEEPLAB_CRF = CRFParams(gauss_sxy=1, gauss_compat=3, bilateral_sxy=67, bilateral_srgb=3, bilateral_compat=4,
                        iterations=10)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One compute thread here, as each torchrun process below: a network run is a few hundred
    small operations, and two threads lose more than they gain when another job has a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """(model in eval mode, its weights file): random weights, the ASPP head scaled down so that
    the softmax is not one-hot and the CRF has something to change."""
    torch.manual_seed(0)
    model = deeplab_v2(CFG.backbone, 21, CFG.depth, CFG.msc_scales)
    with torch.no_grad():
        for p in aspp_of(model, CFG.backbone).parameters():
            p.mul_(0.2)
    path = tmp_path_factory.mktemp("deeplab") / "deeplab.pth"
    torch.save(model.state_dict(), path)
    return model.eval(), path


def infer_argv(demo_root, weights, out, *extra, voc_root=None, image_list=None):
    """infer.py's argv; ``weights``/``out`` None: the defaults under --work_dir (given in ``extra``)."""
    paths = [f"--{flag}={value}" for flag, value in (("weights", weights), ("out", out)) if value is not None]
    return ["--backbone", CFG.backbone, "--depth", str(CFG.depth), "--device", "cpu", "--quiet", "True",
            "--voc12_root", str(voc_root or demo_root / "VOC2012"), "--list", str(image_list or demo_root / "val.txt"),
            "--num_workers", "0", *paths, *extra]


@pytest.fixture(scope="module")
def val_run(demo_root, network, tmp_path_factory):
    """The val images with Prob and CRF labels; a loading worker and a CRF worker process."""
    out = tmp_path_factory.mktemp("val") / "out"
    infer.main(infer_argv(demo_root, network[1], out, "--save_prob", "True", "--crf", "True",
                          "--num_workers", "1"))
    return out


def list_of(tmp_path, names):
    path = tmp_path / "images.txt"
    path.write_text("".join(f"{name}\n" for name in names))
    return path


def by_hand(model, image, flip=False):
    """The softmax (21, H, W) computed here: the network's logits (averaged with the mirrored
    image's, mirrored back), bilinear upsampling to the image size, softmax."""
    x = chw(input_array(image, CFG))[None]
    with torch.no_grad():
        logits = model(x)
        if flip:
            logits = (logits + model(x.flip(-1)).flip(-1)) / 2
    logits = F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False)
    return F.softmax(logits, dim=1)[0].numpy()


def assert_same_labels_where_clear(labels, prob, margin=1e-3):
    """labels == argmax(prob) wherever the top two probabilities are ``margin`` apart."""
    top2 = np.sort(prob, axis=0)[-2:]
    clear = top2[1] - top2[0] > margin
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(labels[clear], prob.argmax(0)[clear])


def test_outputs_sizes_dtypes_and_label_is_argmax_of_prob(val_run, demo_root):
    voc = VOC12(demo_root / "VOC2012")
    names = read_image_list(demo_root / "val.txt")
    for name in names:
        h, w = voc.load_image(name).shape[:2]
        label = load_label_png(val_run / "Label" / f"{name}.png")
        crf = load_label_png(val_run / "CRF_Label" / f"{name}.png")
        prob = load_npz(val_run / "Prob" / f"{name}.npz", required=["prob"])["prob"]
        assert label.shape == crf.shape == (h, w) and label.dtype == crf.dtype == np.uint8
        assert prob.shape == (21, h, w) and prob.dtype == np.float32
        np.testing.assert_allclose(prob.sum(0), 1, atol=1e-5)
        np.testing.assert_array_equal(label, prob.argmax(0))
        assert label.max() <= 20 and crf.max() <= 20
    assert not (val_run / "results").exists()  # the val images have ground truth
    assert not (val_run / "Label" / "failures.txt").exists()


def test_formula_by_hand(val_run, demo_root, network):
    name = read_image_list(demo_root / "val.txt")[1]
    image = VOC12(demo_root / "VOC2012").load_image(name)
    expected = by_hand(network[0], image)
    prob = load_npz(val_run / "Prob" / f"{name}.npz")["prob"]
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    assert_same_labels_where_clear(load_label_png(val_run / "Label" / f"{name}.png"), expected)
    assert len(np.unique(expected.argmax(0))) > 1


def test_crf_labels_are_the_dense_crf_of_the_softmax(val_run, demo_root):
    voc = VOC12(demo_root / "VOC2012")
    changed = 0
    for name in read_image_list(demo_root / "val.txt"):
        image = voc.load_image(name)
        prob = load_npz(val_run / "Prob" / f"{name}.npz")["prob"]
        unary = -np.log(np.clip(prob, 1e-5, 1.0))  # pydensecrf's unary_from_softmax
        expected = dense_crf(image, unary, DEEPLAB_CRF).argmax(0)
        crf = load_label_png(val_run / "CRF_Label" / f"{name}.png")
        np.testing.assert_array_equal(crf, expected)
        changed += int((crf != load_label_png(val_run / "Label" / f"{name}.png")).sum())
    assert changed > 0  # the CRF did something, so the comparison above means something


def test_eval_reads_the_labels(val_run, demo_root, capsys):
    assert eval_script.main(["--pred", str(val_run / "Label"), "--gt", str(demo_root / "VOC2012" / "SegmentationClassAug"),
                             "--list", str(demo_root / "val.txt")]) == 0
    assert "mIoU:" in capsys.readouterr().out


def test_flip_averages_the_logits_of_the_image_and_its_mirror(val_run, demo_root, network, tmp_path):
    name = read_image_list(demo_root / "val.txt")[1]
    image_list = list_of(tmp_path, [name])
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="--amp True applies on CUDA only"):
        infer.main(infer_argv(demo_root, network[1], out, "--flip", "True", "--save_prob", "True", "--crf", "False",
                              "--amp", "True", image_list=image_list))
    image = VOC12(demo_root / "VOC2012").load_image(name)
    expected = by_hand(network[0], image, flip=True)
    prob = load_npz(out / "Prob" / f"{name}.npz")["prob"]
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    without_flip = load_npz(val_run / "Prob" / f"{name}.npz")["prob"]
    assert np.abs(prob - without_flip).max() > 1e-2  # the flip changed something
    assert_same_labels_where_clear(load_label_png(out / "Label" / f"{name}.png"), expected)
    assert not (out / "CRF_Label").exists()


@pytest.fixture(scope="module")
def test_set(demo_root, tmp_path_factory):
    """(VOC root, list): the val images at 40 % of their size (the plumbing tests' network runs
    are cheap on them) and without ground truth, as VOC's test images."""
    folder = tmp_path_factory.mktemp("test_set")
    names = read_image_list(demo_root / "val.txt")
    (folder / "VOC2012" / "JPEGImages").mkdir(parents=True)
    for name in names:
        with Image.open(demo_root / "VOC2012" / "JPEGImages" / f"{name}.jpg") as image:
            image.resize((image.width * 2 // 5, image.height * 2 // 5), Image.BILINEAR).save(
                folder / "VOC2012" / "JPEGImages" / f"{name}.jpg", quality=90)
    (folder / "test.txt").write_text("".join(f"{name}\n" for name in names))
    return folder / "VOC2012", folder / "test.txt"


@pytest.mark.parametrize("crf", [True, False])
def test_images_without_ground_truth_get_the_server_layout(demo_root, network, test_set, tmp_path, capsys, crf):
    voc_root, image_list = test_set
    names = read_image_list(image_list)[:2]
    out = tmp_path / "out"
    infer.main(infer_argv(demo_root, network[1], out, "--crf", str(crf), voc_root=voc_root,
                          image_list=list_of(tmp_path, names)))
    server = out / "results" / "VOC2012" / "Segmentation" / "comp6_test_cls"
    assert str(server) in capsys.readouterr().out
    for name in names:
        source = out / ("CRF_Label" if crf else "Label") / f"{name}.png"
        assert (server / f"{name}.png").read_bytes() == source.read_bytes()


def test_done_images_are_skipped_unless_stale_or_overwrite(demo_root, network, test_set, tmp_path, capsys):
    voc_root, image_list = test_set
    work = tmp_path / "work"  # the default weights and output folder are under it
    weights = work / DeepLabConfig.weights_name
    weights.parent.mkdir(parents=True)
    shutil.copy(network[1], weights)
    names = read_image_list(image_list)[:2]
    argv = infer_argv(demo_root, None, None, "--work_dir", str(work), voc_root=voc_root,
                      image_list=list_of(tmp_path, names))
    outputs = [work / "DeepLab" / "images" / folder / f"{name}.png" for folder in ("Label", "CRF_Label")
               for name in names]

    def stamps():
        return [path.stat().st_mtime_ns for path in outputs]

    infer.main(argv)
    first = stamps()
    capsys.readouterr()
    infer.main(argv)
    assert stamps() == first and "2 of 2 images already done, skipped" in capsys.readouterr().err
    (work / "DeepLab" / "images" / "CRF_Label" / f"{names[1]}.png").unlink()  # an interrupted run
    infer.main(argv)
    second = stamps()
    assert second[0] == first[0] and second[1] > first[1] and "1 of 2 images already done" in capsys.readouterr().err
    newer = max(second) + 10**9
    os.utime(weights, ns=(newer, newer))  # new weights: every label is stale
    infer.main(argv)
    third = stamps()
    assert all(t > s for t, s in zip(third, second))
    infer.main(argv + ["--overwrite", "True"])
    assert all(t > s for t, s in zip(stamps(), third))


def test_two_processes_write_what_one_writes(demo_root, network, test_set, tmp_path):
    voc_root, image_list = test_set
    names = read_image_list(image_list)
    outs = {n: tmp_path / f"out{n}" for n in (1, 2)}
    for nproc, out in outs.items():  # both under torchrun, so that both run with the same threads per process
        torchrun("DeepLab/infer.py", infer_argv(demo_root, network[1], out, "--save_prob", "True", voc_root=voc_root,
                                                image_list=image_list), nproc=nproc)
    for folder in ("Label", "CRF_Label", "results/VOC2012/Segmentation/comp6_test_cls"):
        for name in names:
            assert (outs[1] / folder / f"{name}.png").read_bytes() == (outs[2] / folder / f"{name}.png").read_bytes()
    same_npz_folders(outs[1] / "Prob", outs[2] / "Prob", names)


def test_a_checkpoint_of_the_other_backbone_is_refused(demo_root, tmp_path, capsys):
    weights = tmp_path / "caffe.pth"
    torch.save(deeplab_v2("caffe", 21, 50).state_dict(), weights)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        infer.main(infer_argv(demo_root, weights, out))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(weights) in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
