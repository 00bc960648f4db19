"""The GCN steps end to end on the IRN run's outputs (a few demo images), and their contracts."""
import shutil

import numpy as np
import pytest
import torch

from GCN import CRF, make_dataset
from GCN import train as gcn_train
from wsgcn.infra.io import load_label_png, save_label_png
from wsgcn.infra.layout import strided_size
from wsgcn.seg.cams import labels_with_background
from wsgcn.seg.dataset import read_image_list
from wsgcn.seg.scores import load_probs


@pytest.fixture(scope="module")
def gcn_run(irn_run, demo_root):
    cfg, work, voc = irn_run
    argv = ["--work_dir", str(work), "--voc12_root", str(demo_root / "VOC2012"),
            "--train_list", str(demo_root / "val.txt"), "--cls_labels", str(demo_root / "cls_labels.txt"),
            "--max_epoch", "20", "--num_workers", "0", "--quiet", "True"]
    for step in (make_dataset, gcn_train, CRF):
        step.main(argv)
    return argv, work, voc, read_image_list(demo_root / "val.txt")


def isolated_argv(argv, work, tmp_path, train_list):
    """A copy of the run's GCN inputs under ``tmp_path``, and argv pointing there and at ``train_list``."""
    other = tmp_path / "work"
    shutil.copytree(work / "IRN4GCN", other / "IRN4GCN")
    argv = [str(other) if a == str(work) else a for a in argv]
    argv[argv.index("--train_list") + 1] = str(train_list)
    return argv, other


def classes_of(voc, name):
    return {0} | set((np.flatnonzero(voc.class_labels(name)) + 1).tolist())


def test_partial_labels(gcn_run):
    _, work, voc, names = gcn_run
    for name in names:
        size = voc.load_image(name).shape[:2]
        grid = load_label_png(work / "IRN4GCN/PARTIAL_PSEUDO_LABEL_DN" / f"{name}.png")
        full = load_label_png(work / "IRN4GCN/PARTIAL_PSEUDO_LABEL_DN_UP" / f"{name}.png")
        assert grid.shape == strided_size(size, 4) and full.shape == size
        assert set(np.unique(grid).tolist()) <= classes_of(voc, name) | {255}
        assert set(np.unique(full).tolist()) == set(np.unique(grid).tolist())


def test_gcn_and_crf_outputs(gcn_run):
    _, work, voc, names = gcn_run
    for name in names:
        size = voc.load_image(name).shape[:2]
        expected_keys = sorted(classes_of(voc, name))
        label = load_label_png(work / "GCN4DeepLab/Label" / f"{name}.png")
        keys, prob = load_probs(work / "GCN4DeepLab/Logit" / f"{name}.npz", voc.num_classes, image_size=size)
        assert label.shape == size and set(np.unique(label).tolist()) <= set(expected_keys)
        assert keys.tolist() == expected_keys and prob.dtype == np.float32 and (prob >= 0).all()
        np.testing.assert_array_equal(label, keys[prob.argmax(0)])  # the label is the argmax of the Logit
        crf_label = load_label_png(work / "GCN4DeepLab/CRF_Label" / f"{name}.png")
        crf_keys, q = load_probs(work / "GCN4DeepLab/CRF_Logit" / f"{name}.npz", voc.num_classes, image_size=size)
        assert crf_keys.tolist() == expected_keys
        np.testing.assert_allclose(q.sum(0), 1, atol=1e-4)
        np.testing.assert_array_equal(crf_label, crf_keys[q.argmax(0)])


def test_results_do_not_depend_on_list_order(gcn_run, tmp_path):
    argv, work, voc, names = gcn_run
    reversed_list = tmp_path / "reversed.txt"
    reversed_list.write_text("\n".join(reversed(names[1:])) + "\n")
    argv, other = isolated_argv(argv, work, tmp_path, reversed_list)
    gcn_train.main(argv)
    for name in names[1:]:
        np.testing.assert_array_equal(load_probs(other / "GCN4DeepLab/Logit" / f"{name}.npz", voc.num_classes)[1],
                                      load_probs(work / "GCN4DeepLab/Logit" / f"{name}.npz", voc.num_classes)[1])


def test_predictions_restricted_to_image_classes():
    log_probs = torch.log_softmax(torch.randn(21, 3, 4), 0)
    log_probs[7] = 10.0  # an absent class wins everywhere
    labels, keys, prob = gcn_train.predictions(log_probs, (6, 8), np.array([2]), restrict=True)
    assert set(np.unique(labels).tolist()) <= {0, 3} and keys.tolist() == [0, 3] and prob.shape == (2, 6, 8)
    labels, _, _ = gcn_train.predictions(log_probs, (6, 8), np.array([2]), restrict=False)
    assert (labels == 7).all()  # the original behaviour


def test_image_without_labelled_node_gets_background_and_a_warning(gcn_run, tmp_path):
    argv, work, voc, names = gcn_run
    name = names[0]
    one = tmp_path / "one.txt"
    one.write_text(name + "\n")
    argv, other = isolated_argv(argv, work, tmp_path, one)
    partial = other / "IRN4GCN/PARTIAL_PSEUDO_LABEL_DN" / f"{name}.png"
    save_label_png(partial, np.full_like(load_label_png(partial), 255))
    with pytest.warns(UserWarning, match=f"{name}: no node carries a partial label"):
        gcn_train.main(argv)
    assert (load_label_png(other / "GCN4DeepLab/Label" / f"{name}.png") == 0).all()
    keys, prob = load_probs(other / "GCN4DeepLab/Logit" / f"{name}.npz", voc.num_classes)
    assert (prob[0] == 1).all() and (prob[1:] == 0).all()


@pytest.mark.parametrize("graph", ["lowmem", "dense"])
def test_batched_gcns_equal_each_image_trained_alone(graph):
    """Images of different sizes trained together: each one's result is the one it gets alone,
    whatever its place in the batch."""
    from dataclasses import replace

    from GCN.bench import synthetic_inputs
    from GCN.config import GCNConfig

    cfg = replace(GCNConfig(), max_epoch=15, graph=graph)
    images = [replace(synthetic_inputs(h, w, seed), name=f"image{seed}")
              for seed, (h, w) in enumerate([(14, 11), (9, 16), (12, 12)])]
    alone = [gcn_train.train_gcn([x], cfg, torch.device("cpu"))[0] for x in images]
    together = gcn_train.train_gcn(images[::-1], cfg, torch.device("cpu"))[::-1]
    for (log_probs, losses), (batched, batched_losses) in zip(alone, together):
        assert batched.shape == log_probs.shape
        torch.testing.assert_close(batched, log_probs, atol=2e-4, rtol=1e-4)
        assert batched_losses == pytest.approx(losses, rel=1e-3, abs=1e-5)
    # the runs differ per image: the test would notice images' results being swapped
    assert not torch.allclose(alone[0][0][:, :9, :11], alone[2][0][:, :9, :11], atol=1e-2)


def test_output_layout_follows_the_data_set():
    from dataclasses import replace

    from GCN.config import GCNConfig

    assert gcn_train.output_layout(GCNConfig()) == "all"  # voc12: the original's 21 outputs
    for dataset in ("coco14", "own.json"):
        assert gcn_train.output_layout(replace(GCNConfig(), dataset=dataset)) == "padded"
    for layout in ("all", "padded", "image"):
        assert gcn_train.output_layout(replace(GCNConfig(), dataset="coco14", outputs=layout)) == layout


@pytest.mark.parametrize("layout", ["image", "padded"])
def test_outputs_per_image_are_the_gcn_of_a_data_set_of_the_image_classes(layout):
    """--outputs image / padded on an 81-class data set: each image's GCN is the one an 'all' GCN
    gives on a data set whose classes are the image's own (labels renumbered), plus, for padded,
    classes no label names up to the original's 21 outputs; batched or alone, with images of
    different class counts; the data set's absent classes get probability 0."""
    from dataclasses import replace

    from GCN.bench import synthetic_inputs
    from GCN.config import GCNConfig

    cfg = replace(GCNConfig(), max_epoch=15, dataset="coco14", outputs=layout)
    images, own_class_sets = [], ([5, 40, 79], [12], [0, 7])
    for seed, ((h, w), own) in enumerate(zip([(14, 11), (9, 16), (12, 12)], own_class_sets)):
        x = synthetic_inputs(h, w, seed)
        own = np.array(own)
        # synthetic labels 0, 3, 8, 15 -> background and the image's classes (fewer: the last merged)
        keep = {0: 0, 3: 1 + own[0], 8: 1 + own[min(1, len(own) - 1)], 15: 1 + own[-1]}
        partial = np.vectorize(lambda v: keep.get(v, 255))(x.partial_labels).astype(np.uint8)
        images.append(replace(x, name=f"image{seed}", partial_labels=partial, classes=own, num_classes=81))
    together = gcn_train.train_gcn(images, cfg, torch.device("cpu"))
    for x, (log_probs, losses) in zip(images, together):
        classes = labels_with_background(x.classes)
        width = len(classes) if layout == "image" else gcn_train.ORIGINAL_OUTPUTS
        small = replace(x, partial_labels=gcn_train.renumber(x, classes).astype(np.uint8),
                        classes=np.arange(len(x.classes)), num_classes=width)
        reference, reference_losses = gcn_train.train_gcn([small], replace(cfg, outputs="all"), torch.device("cpu"))[0]
        assert log_probs.shape == (81,) + x.partial_labels.shape
        torch.testing.assert_close(log_probs[classes], reference[: len(classes)], atol=2e-4, rtol=1e-4)
        assert (log_probs[np.setdiff1d(np.arange(81), classes)].exp() == 0).all()
        if layout == "padded":  # the padding took probability: the image's own do not sum to 1
            assert (log_probs[classes].exp().sum(0) < 1 - 1e-3).any()
        for restrict in (True, False):  # the absent classes never win, upsampled too
            label_map, keys, prob = gcn_train.predictions(log_probs, (29, 31), x.classes, restrict)
            assert set(np.unique(label_map).tolist()) <= set(classes.tolist()) and np.isfinite(prob).all()
        assert losses == pytest.approx(reference_losses, rel=1e-3, abs=1e-5)


def test_outputs_image_fails_an_image_with_a_stray_label():
    from dataclasses import replace

    from GCN.bench import synthetic_inputs

    x = replace(synthetic_inputs(6, 6), classes=np.array([2, 7]))  # its labels 3, 8 and 15: 15 is stray
    with pytest.raises(ValueError, match=r"synthetic: partial labels of classes \[15\]"):
        gcn_train.renumber(x, labels_with_background(x.classes))


def test_gcn_logs_per_image_losses_and_coverage(gcn_run):
    from conftest import read_scalars

    _, work, _, names = gcn_run
    scalars = read_scalars(work / "logs" / "gcn")
    coverage = [value for _, value in scalars["gcn/label_coverage"]]
    assert len(coverage) == len(names) and all(0 <= c <= 1 for c in coverage)
    expected = [float((load_label_png(work / "IRN4GCN/PARTIAL_PSEUDO_LABEL_DN" / f"{n}.png") != 255).mean())
                for n in names]
    assert sorted(coverage) == pytest.approx(sorted(expected), abs=1e-6)
    trained = [n for n, c in zip(names, expected) if c > 0]
    assert len(scalars["gcn/final_total"]) == len(trained) and len(scalars["gcn/final_nll"]) == len(trained)


class _Recorder:
    def __init__(self):
        self.written = []

    def write(self, inputs, *outputs):
        self.written.append(inputs.name)


def _three_images():
    from dataclasses import replace

    from GCN.bench import synthetic_inputs

    return [(replace(synthetic_inputs(6, 7, seed), name=f"image{seed}"), None) for seed in range(3)]


def test_out_of_memory_retries_the_batch_one_image_at_a_time(monkeypatch, tmp_path):
    from GCN.config import GCNConfig
    from wsgcn.infra.per_image import Failures

    sizes = []

    def train_gcn(images, cfg, device, prepared=None):
        sizes.append(len(images))
        if len(images) > 1 or images[0].name == "image2":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [(torch.zeros(21, 6, 7), {"total": 0.0})]

    monkeypatch.setattr(gcn_train, "train_gcn", train_gcn)
    out, failures = _Recorder(), Failures("GCN", tmp_path)
    gcn_train.train_and_write(_three_images(), GCNConfig(), torch.device("cpu"), out, failures)
    assert sizes == [3, 1, 1, 1] and out.written == ["image0", "image1"]
    assert [(name, reason) for name, reason, _ in failures.items] == [
        ("image2", "CUDA out of memory. Tried to allocate 2.00 GiB")]


def test_input_errors_fail_the_batch_on_the_cpu_and_stop_the_run_on_cuda_and_bugs_stop_it_everywhere(
        monkeypatch, tmp_path):
    from GCN.config import GCNConfig
    from wsgcn.infra.per_image import Failures

    def bad_input(images, cfg, device, prepared=None):
        raise ValueError("x.npz: boundary map of the wrong size")

    def bug(images, cfg, device, prepared=None):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(gcn_train, "train_gcn", bad_input)
    failures = Failures("GCN", tmp_path)
    gcn_train.train_and_write(_three_images(), GCNConfig(), torch.device("cpu"), _Recorder(), failures)
    assert len(failures.items) == 3
    with pytest.raises(ValueError, match="wrong size"):  # a device-side error: every later batch would fail too
        gcn_train.train_and_write(_three_images(), GCNConfig(), torch.device("cuda"), _Recorder(), failures)
    monkeypatch.setattr(gcn_train, "train_gcn", bug)
    for device in ("cpu", "cuda"):
        with pytest.raises(RuntimeError, match="device-side assert"):
            gcn_train.train_and_write(_three_images(), GCNConfig(), torch.device(device), _Recorder(), failures)
    assert len(failures.items) == 3


def test_partial_label_values_are_checked_at_load(gcn_run, tmp_path):
    from GCN.inputs import load_gcn_inputs
    from wsgcn.infra.layout import WorkDir

    _, work, voc, names = gcn_run
    other = tmp_path / "work"
    shutil.copytree(work / "IRN4GCN", other / "IRN4GCN")
    path = other / "IRN4GCN/PARTIAL_PSEUDO_LABEL_DN" / f"{names[0]}.png"
    labels = load_label_png(path)
    labels[0, 0] = 100
    save_label_png(path, labels)
    with pytest.raises(ValueError, match=r"label values \[100\] are neither a class"):
        load_gcn_inputs(WorkDir(other), voc, names[0])
