import numpy as np

from IRN.datasets import crop_into, random_crop_box, rescale_image

# Outputs of skimage.transform.rescale(img, s, order=3, channel_axis=-1, preserve_range=True,
# anti_aliasing=True), the resampling of IRNet's data loader, recorded with scikit-image 0.26.
SKIMAGE_DOWN = [[72.802, 93.936], [132.489, 156.818], [77.182, 101.511], [140.064, 161.198]]
SKIMAGE_UP = [[12.251, 36.775, 83.438, 97.333], [77.078, 109.122, 97.328, 55.572],
              [159.339, 213.178, 142.924, 31.245], [68.195, 109.423, 156.086, 153.277],
              [142.053, 79.797, 68.003, 120.547], [203.315, 95.432, 25.179, 75.222]]


def grey(values):
    return np.repeat(np.asarray(values, np.uint8)[:, :, None], 3, 2)


def test_rescale_matches_irnets_skimage_resampling():
    down = rescale_image(grey(np.arange(35).reshape(7, 5) * 37 % 256), 0.5)
    up = rescale_image(grey(np.arange(12).reshape(4, 3) * 53 % 256), 1.5)
    np.testing.assert_allclose(down[..., 0], SKIMAGE_DOWN, atol=1e-3)
    np.testing.assert_allclose(up[..., 0], SKIMAGE_UP, atol=1e-3)
    assert down.dtype == np.float32 and (down[..., 0] == down[..., 2]).all()


def test_rescale_identity_and_shape():
    img = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rescale_image(img, 1.0), img)
    assert rescale_image(img, 0.5).shape == (4, 6, 3)  # round half to even, as numpy/skimage
    assert rescale_image(img, 2.0).shape == (18, 22, 3)


def test_random_crop_pads_small_images_and_crops_large_ones():
    rng = np.random.default_rng(0)
    small = np.ones((5, 7, 3), np.float32)
    (out,) = crop_into([small], [0.0], 8, random_crop_box(rng, small.shape[:2], 8))
    assert out.shape == (8, 8, 3) and out.sum() == small.sum()
    large = np.arange(100, dtype=np.float32).reshape(10, 10)
    (out,) = crop_into([large], [0.0], 4, random_crop_box(rng, large.shape, 4))
    assert out.shape == (4, 4) and np.all(np.diff(out, axis=1) == 1)  # a contiguous window
