"""Box conversions, IoU and validation."""
import math

import numpy as np
import pytest

from nl_tracker_ros import boxes
from nl_tracker_ros.errors import InputError


def test_conversions_round_trip():
    b = np.array([[10.0, 20.0, 30.0, 40.0], [0.5, 1.5, 2.0, 3.0]])
    np.testing.assert_allclose(boxes.xyxy_to_xywh(boxes.xywh_to_xyxy(b)), b)
    np.testing.assert_allclose(boxes.cxcywh_to_xywh(boxes.xywh_to_cxcywh(b)), b)
    np.testing.assert_allclose(boxes.xywh_to_xyxy(b[0]), [10, 20, 40, 60])
    np.testing.assert_allclose(boxes.xywh_to_cxcywh(b[0]), [25, 40, 30, 40])


def test_iou_hand_cases():
    # Two 10x10 boxes overlapping in a 5x10 strip: 50 / (100 + 100 - 50).
    assert boxes.iou_xywh([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(1 / 3)
    assert boxes.iou_xywh([0, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(1.0)
    assert boxes.iou_xywh([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0
    assert boxes.iou_xywh([0, 0, 0, 10], [0, 0, 0, 10]) == 0.0
    # Broadcast: one box against three.
    others = np.array([[0, 0, 4, 4], [2, 2, 4, 4], [0, 0, 2, 2]])
    got = boxes.iou_xywh(np.array([0, 0, 4, 4]), others)
    np.testing.assert_allclose(got, [1.0, 4 / 28, 4 / 16])


def test_validate_accepts_good_boxes():
    assert boxes.validate_box_xywh([1, 2, 3, 4], (10, 10)) == (1.0, 2.0, 3.0, 4.0)
    assert boxes.validate_box_xywh((0, 0, 10, 10), (10, 10)) == (0.0, 0.0, 10.0, 10.0)


@pytest.mark.parametrize('box, word', [
    ([1, 2, 3], '4 numbers'),
    ([1, 2, 3, math.nan], 'finite'),
    ([1, 2, 0, 4], 'positive'),
    ([1, 2, 3, -4], 'positive'),
    ([-1, 2, 3, 4], 'non-negative'),
    ([8, 8, 5, 5], 'outside'),
    (['a', 2, 3, 4], '4 numbers'),
])
def test_validate_rejects_bad_boxes(box, word):
    with pytest.raises(InputError, match=word):
        boxes.validate_box_xywh(box, (10, 10), name='init_box')


def test_jitter_moves_and_resizes_by_the_given_shares():
    jitter_xywh = boxes.jitter_xywh
    rng = np.random.default_rng(0)
    assert jitter_xywh((10, 20, 40, 80), rng, 0.0, 0.0) == (10.0, 20.0, 40.0, 80.0)
    got = np.array([jitter_xywh((10, 20, 40, 80), rng, 0.25, 0.1) for _ in range(4000)])
    centre = got[:, :2] + got[:, 2:] / 2 - (30, 60)
    assert np.allclose(centre.std(0) / (40, 80), 0.25, atol=0.02)
    assert np.allclose(np.abs(centre.mean(0)) / (40, 80), 0, atol=0.02)
    assert np.allclose(np.log(got[:, 2] / 40).std(), 0.1, atol=0.01)
    assert np.allclose(got[:, 3] / got[:, 2], 2.0)          # the aspect ratio is kept
