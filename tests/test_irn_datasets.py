import numpy as np
import pytest
import torch
from PIL import Image

from IRN.datasets import AffinityDataset, MultiScaleDataset, normalize, random_crop_box, rescale
from wsgcn.seg.affinity import PathIndex
from wsgcn.seg.augment import crop_into


def test_rescale_is_pils_resize_to_the_rounded_size():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    for scale in (0.5, 0.73, 1.5, 2.0):
        h, w = int(np.round(9 * scale)), int(np.round(11 * scale))
        expected = np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))
        out = rescale(img, scale, order=3)
        assert out.dtype == np.uint8  # PIL rounds and clips before normalisation, as IRNet
        np.testing.assert_array_equal(out, expected)
    assert rescale(img, 0.5, order=3).shape == (4, 6, 3)  # 4.5 -> 4, 5.5 -> 6: numpy's round half to even
    labels = rng.integers(0, 21, (9, 11), dtype=np.uint8)
    np.testing.assert_array_equal(rescale(labels, 1.5, order=0),
                                  np.asarray(Image.fromarray(labels).resize((16, 14), Image.NEAREST)))


def test_rescale_keeps_an_unchanged_size_untouched():
    img = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    assert rescale(img, 1.0, order=3) is img
    assert rescale(img, 1.04, order=3) is img  # round(9.36), round(11.44) = 9, 11: no resampling at all


def test_rescale_bicubic_by_hand():
    """Doubling a step edge with Keys' cubic (a = -0.5, PIL's bicubic) on pixel centres, edge
    pixels repeated: the step overshoots on both sides and the undershoot is clipped at 0."""
    row = np.array([0, 0, 200, 200], np.uint8)
    out = rescale(np.repeat(row[None], 2, 0), 2.0, order=3)[0].astype(float)

    def keys_cubic(d):
        return (1.5 * d - 2.5) * d * d + 1 if d <= 1 else ((-0.5 * d + 2.5) * d - 4) * d + 2

    centres = (np.arange(8) + 0.5) / 2 - 0.5          # output pixel centres in input coordinates
    taps = np.floor(centres).astype(int)[:, None] + np.arange(-1, 3)
    weights = np.vectorize(keys_cubic)(np.abs(centres[:, None] - taps))
    values = (weights / weights.sum(1, keepdims=True) * row[np.clip(taps, 0, 3)]).sum(1)
    np.testing.assert_allclose(out, np.clip(np.round(values), 0, 255), atol=1)
    assert out.max() > 200 and values.min() < 0 and out.min() == 0


def test_rescale_nearest_quarter_takes_pixel_centres():
    """IRNet reduces the IR label x0.25 with PIL's nearest: output pixel i reads input 4i + 2."""
    labels = np.arange(16 * 12, dtype=np.uint8).reshape(16, 12)
    np.testing.assert_array_equal(rescale(labels, 0.25, order=0), labels[2::4, 2::4])


def test_normalize_rounds_once_as_irnets_torchvision_normalize():
    """IRNet computes (x / 255 - mean) / std in float64 and stores float32: every byte value
    gives exactly that float32 (a float32 division first would differ for about half of them)."""
    values = np.arange(256, dtype=np.uint8)
    img = np.stack([values] * 3, -1)[None]                     # (1, 256, 3)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expected = np.stack([np.float32((values / 255. - m) / s) for m, s in zip(mean, std)], -1)[None]
    np.testing.assert_array_equal(normalize(img), expected)
    assert normalize(img).dtype == np.float32


def test_rescale_refuses_what_pil_rescale_does_not_take():
    with pytest.raises(ValueError, match="order"):
        rescale(np.zeros((4, 4), np.uint8), 0.5, order=1)
    with pytest.raises(ValueError, match="uint8"):
        rescale(np.zeros((4, 4), np.float32), 0.5, order=3)


class _OneImage:
    def __init__(self, img, label=None):
        self.img, self.label = img, label

    def load_image(self, name):
        return self.img

    def class_labels(self, name):
        return np.zeros(20, np.float32)


def test_multi_scale_dataset_feeds_pil_bicubic_images():
    img = np.random.default_rng(2).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    pack = MultiScaleDataset(_OneImage(img), ["a"], scales=(1.0, 0.5)).pack("a")
    half = np.asarray(Image.fromarray(img).resize((14, 18), Image.BICUBIC))  # round(14.5) = 14, round(18.5) = 18
    for pair, expected in zip(pack["img"], (img, half)):
        expected = torch.from_numpy(normalize(expected).transpose(2, 0, 1).copy())
        torch.testing.assert_close(pair[0], expected, rtol=0, atol=0)
        torch.testing.assert_close(pair[1], expected.flip(-1), rtol=0, atol=0)


def test_affinity_dataset_reduces_the_label_as_irnet(tmp_path):
    """With rescale fixed at 1 and a crop the image's size, the pair labels come from the
    crop's label at rows/columns 2, 6, 10, ... (PIL nearest x0.25)."""
    from wsgcn.infra.io import save_label_png

    rng = np.random.default_rng(3)
    label = rng.choice(np.array([0, 3, 255], np.uint8), (48, 48))
    save_label_png(tmp_path / "a.png", label)
    img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    path_index = PathIndex(2, (12, 12))
    item = AffinityDataset(_OneImage(img), ["a"], tmp_path, path_index, crop_size=48, rescale=(1.0, 1.0))[0]
    flipped = (item["img"][0, 0].numpy() != normalize(img)[:, :, 0]).any()
    expected = path_index.pair_labels((label[:, ::-1] if flipped else label)[2::4, 2::4])
    for got, want in zip((item["bg_pos"], item["fg_pos"], item["neg"]), expected):
        assert got.dtype == torch.uint8  # a quarter of float32's shared memory per sample
        torch.testing.assert_close(got.float(), want)


def test_random_crop_pads_small_images_and_crops_large_ones():
    rng = np.random.default_rng(0)
    small = np.ones((5, 7, 3), np.float32)
    (out,) = crop_into([small], [0.0], 8, random_crop_box(rng, small.shape[:2], 8))
    assert out.shape == (8, 8, 3) and out.sum() == small.sum()
    large = np.arange(100, dtype=np.float32).reshape(10, 10)
    (out,) = crop_into([large], [0.0], 4, random_crop_box(rng, large.shape, 4))
    assert out.shape == (4, 4) and np.all(np.diff(out, axis=1) == 1)  # a contiguous window
