"""Crops, padding, grounding resize and box mapping between frame, crop and features."""
import itertools

import numpy as np
import pytest
import torch

from nl_tracker_ros import preprocessing as pp
from nl_tracker_ros.errors import InputError


def _noise(h=120, w=160, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _square_image(box, h=120, w=160, colour=(250, 20, 20)):
    im = np.full((h, w, 3), 30, np.uint8)
    x, y, bw, bh = box
    im[y:y + bh, x:x + bw] = colour
    return im


def _bright_box_xywh(img, thresh=128):
    ys, xs = np.nonzero(img[..., 0] > thresh)
    return np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()], float)


@pytest.mark.parametrize('sampler', ['warp', 'official'])
def test_crop_over_top_left_border_is_zero_padded_and_masked(sampler):
    im = np.full((100, 120, 3), 200, np.uint8)
    crop = pp.crop_and_resize(im, (0, 0, 20, 20), 4.0, 64, sampler=sampler)
    # Window side 80 centred on (10, 10): 30 px of it lie left of / above the image.
    assert crop.image.shape == (64, 64, 3) and crop.pad_mask.shape == (64, 64)
    assert crop.pad_mask[0, 0] and crop.pad_mask[:, 0].all() and crop.pad_mask[0].all()
    assert not crop.pad_mask[-1, -1]
    assert (crop.image[crop.pad_mask] < 200).all()      # padding (or blended with it)
    assert (crop.image[~crop.pad_mask] == 200).all()    # untouched image pixels
    frac = crop.pad_mask.mean()
    expected = 1 - (50 / 80) ** 2
    assert abs(frac - expected) < 0.05


def test_crop_mean_padding_uses_image_mean_colour():
    im = np.zeros((60, 60, 3), np.uint8)
    im[:, :30] = (100, 150, 250)
    crop = pp.crop_and_resize(im, (0, 0, 60, 60), 2.0, 64, pad='mean')
    corner = crop.image[0, 0].astype(int)
    assert np.abs(corner - np.array([50, 75, 125])).max() <= 1


def test_crop_entirely_outside_image_is_all_padding():
    im = _noise()
    for sampler in ('warp', 'official'):
        crop = pp.crop_and_resize(im, (1000, 1000, 10, 10), 2.0, 32, sampler=sampler)
        assert crop.pad_mask.all()
        assert (crop.image == 0).all()


def test_crop_content_lands_where_the_geometry_says():
    box = (70, 40, 24, 16)
    im = _square_image(box)
    crop = pp.crop_and_resize(im, box, 2.0, 128)
    found = _bright_box_xywh(crop.image)
    mapped = crop.geometry.frame_to_crop(box)
    assert np.abs(found - mapped).max() <= 1.5
    # Centred crop: the target sits in the middle of the crop.
    cx, cy = mapped[0] + mapped[2] / 2, mapped[1] + mapped[3] / 2
    assert abs(cx - 64) < 2 and abs(cy - 64) < 2


def test_warp_and_official_samplers_agree_inside_the_image():
    im = np.ascontiguousarray(np.repeat(np.repeat(_noise(30, 40), 4, 0), 4, 1))  # smooth-ish
    for box in [(40, 30, 30, 20), (100.4, 50.7, 17.2, 23.9)]:
        a = pp.crop_and_resize(im, box, 3.0, 96, sampler='warp')
        b = pp.crop_and_resize(im, box, 3.0, 96, sampler='official')
        ga, gb = a.geometry, b.geometry
        assert ga.scale_x == gb.scale_x and ga.width == gb.width
        # The official mapping centres the crop on the unrounded box centre.
        assert abs(ga.offset_x - gb.offset_x) <= 0.5 and abs(ga.offset_y - gb.offset_y) <= 0.5
        np.testing.assert_allclose(gb.frame_to_norm_cxcywh(box)[:2], 0.5, atol=1e-12)
        inside = ~(a.pad_mask | b.pad_mask)
        diff = np.abs(a.image.astype(int) - b.image.astype(int))[inside]
        assert diff.mean() < 2.0


def test_frame_crop_frame_round_trip_is_identity():
    boxes = [(0, 0, 5, 5), (10.5, 20.25, 33.3, 7.1), (150, 110, 10, 10), (-5, -5, 20, 30)]
    factors = [1.0, 2.0, 5.0]
    sizes = [16, 128, 320]
    rng = np.random.default_rng(1)
    probes = rng.uniform(-50, 200, (20, 4))
    probes[:, 2:] = np.abs(probes[:, 2:]) + 1
    for box, factor, size in itertools.product(boxes, factors, sizes):
        x0, y0, side = pp.crop_window(box, factor)
        s = size / side
        g = pp.CropGeometry(float(x0), float(y0), s, s, size, size)
        np.testing.assert_allclose(g.crop_to_frame(g.frame_to_crop(probes)), probes, atol=1e-9)
        np.testing.assert_allclose(g.norm_cxcywh_to_frame(g.frame_to_norm_cxcywh(probes)),
                                   probes, atol=1e-9)
        # The crop is centred on the box up to the whole-pixel rounding of its corner.
        c = g.frame_to_norm_cxcywh(box)
        assert abs(c[0] - 0.5) <= 0.5 / side + 1e-9 and abs(c[1] - 0.5) <= 0.5 / side + 1e-9


def test_feature_coordinates_round_trip():
    b = np.array([[3.0, 7.5, 40.0, 16.0]])
    f = pp.crop_to_feature(b, 16)
    np.testing.assert_allclose(f, b / 16)
    np.testing.assert_allclose(pp.feature_to_crop(f, 16), b)


@pytest.mark.parametrize('hw', [(120, 160), (160, 120), (50, 50), (7, 300)])
def test_grounding_resize_keeps_aspect_and_inverse_maps_back(hw):
    h, w = hw
    box = (w // 4, h // 4, max(2, w // 3), max(1, h // 3))
    im = _square_image(box, h, w)
    crop = pp.grounding_resize(im, 64)
    assert crop.image.shape == (64, 64, 3)
    valid_rows = (~crop.pad_mask).any(1).sum()
    valid_cols = (~crop.pad_mask).any(0).sum()
    assert max(valid_rows, valid_cols) == 64
    # Aspect kept up to the whole-pixel size of the resized image.
    assert abs(valid_rows - 64 * h / max(h, w)) < 1 and abs(valid_cols - 64 * w / max(h, w)) < 1
    assert (crop.image[crop.pad_mask] == 0).all()
    # Padding only at the bottom and right.
    assert not crop.pad_mask[0, 0]
    g = crop.geometry
    if h >= 20:  # the drawn box survives the resize
        found = g.crop_to_frame(_bright_box_xywh(crop.image))
        tol = 1.5 / min(g.scale_x, g.scale_y)
        assert np.abs(found - np.array(box, float)).max() <= tol
    np.testing.assert_allclose(g.crop_to_frame(g.frame_to_crop(box)), box, atol=1e-9)
    full = g.norm_cxcywh_to_frame(g.frame_to_norm_cxcywh((0, 0, w, h)))
    np.testing.assert_allclose(full, (0, 0, w, h), atol=1e-9)


@pytest.mark.parametrize('bad', [
    np.zeros((10, 10, 3), np.float32),
    np.zeros((10, 10), np.uint8),
    np.zeros((10, 10, 4), np.uint8),
    np.zeros((0, 10, 3), np.uint8),
    [[0, 0, 0]],
])
def test_bad_images_raise_input_error(bad):
    with pytest.raises(InputError):
        pp.validate_image(bad)
    with pytest.raises(InputError):
        pp.crop_and_resize(bad, (0, 0, 5, 5), 2.0, 32)
    with pytest.raises(InputError):
        pp.grounding_resize(bad, 32)


@pytest.mark.parametrize('box', [(0, 0, 0, 5), (0, 0, 5, -1), (np.nan, 0, 5, 5),
                                 (0, 0, np.inf, 5)])
def test_degenerate_crop_boxes_raise_input_error(box):
    with pytest.raises(InputError):
        pp.crop_and_resize(_noise(), box, 2.0, 32)


def test_bad_pad_and_sampler_names_raise():
    with pytest.raises(InputError):
        pp.crop_and_resize(_noise(), (5, 5, 5, 5), 2.0, 32, pad='edge')
    with pytest.raises(InputError):
        pp.crop_and_resize(_noise(), (5, 5, 5, 5), 2.0, 32, sampler='nearest')


def test_to_tensor_normalises_with_imagenet_statistics():
    mean = np.array(pp.IMAGENET_MEAN) * 255
    im = np.zeros((4, 6, 3), np.uint8)
    im[:] = np.round(mean).astype(np.uint8)
    im[0, 0] = 255
    x = pp.to_tensor(im, 'cpu')
    assert x.shape == (1, 3, 4, 6) and x.dtype == torch.float32
    assert x[0, :, 1:, 1:].abs().max() < 0.01
    expected = (1 - torch.tensor(pp.IMAGENET_MEAN)) / torch.tensor(pp.IMAGENET_STD)
    torch.testing.assert_close(x[0, :, 0, 0], expected)
    assert pp.to_tensor([im, im], 'cpu').shape == (2, 3, 4, 6)
    with pytest.raises(InputError):
        pp.to_tensor(np.zeros((2, 4, 6, 3), np.float32), 'cpu')
    with pytest.raises(InputError):
        pp.to_tensor(None, 'cpu')


def test_mask_to_tokens_takes_top_left_pixel_of_each_cell():
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[:, 40:, :] = True   # rows 40.. are padding: cells starting at 48 are fully padding
    tokens = pp.mask_to_tokens(mask, 16)
    assert tokens.shape == (1, 16)
    grid = tokens.view(4, 4)
    assert grid[3].all() and not grid[:3].any()


def test_clip_box_keeps_box_inside_image():
    for box in [(-10, -10, 50, 50), (150, 100, 40, 40), (500, 500, 5, 5), (10, 10, 0.1, 0.1)]:
        x, y, w, h = pp.clip_box_xywh(box, (160, 120), min_size=10)
        assert x >= 0 and y >= 0 and x + w <= 160 + 1e-9 and y + h <= 120 + 1e-9
        assert w >= 10 and h >= 10
    assert pp.clip_box_xywh((20, 30, 40, 50), (160, 120)) == (20, 30, 40, 50)
    x, y, w, h = pp.clip_box_xywh((0, 0, 3, 3), (4, 4), min_size=10)  # image below the margin
    assert (x, y) == (0, 0) and w <= 4 and h <= 4


def test_official_grounding_mapping_rounds_cuts_and_scales_by_width():
    g = pp.grounding_geometry(333, 500, 320)   # resized to 213 x 320 (int() of 213.1)
    scale = 333 / 213
    box = pp.official_grounding_to_frame((0.5, 0.5, 0.25, 0.2), g, (333, 500))
    np.testing.assert_allclose(box, np.array([120, 128, 80, 64]) * scale)
    # A box reaching into the padding is cut at the resized image's right edge.
    box = pp.official_grounding_to_frame((0.7, 0.5, 0.2, 0.2), g, (333, 500))
    np.testing.assert_allclose(box, np.array([192, 128, 21, 64]) * scale)
    # Close to the exact inverse where nothing is cut.
    exact = g.norm_cxcywh_to_frame((0.5, 0.5, 0.25, 0.2))
    assert np.abs(pp.official_grounding_to_frame((0.5, 0.5, 0.25, 0.2), g, (333, 500))
                  - exact).max() < 1.0
