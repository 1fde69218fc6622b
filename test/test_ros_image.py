"""Image payload conversion of the ROS layer (pure numpy/OpenCV, no middleware)."""
import array

import cv2
import numpy as np
import pytest

from nl_tracker_ros import images as imconv


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)


def payload(img: np.ndarray, pad: int = 0) -> tuple[int, bytes]:
    """(step, data) of ``img`` rows with ``pad`` extra bytes at the end of each row."""
    h = img.shape[0]
    rows = img.reshape(h, -1)
    rows = np.concatenate([rows, np.full((h, pad), 7, np.uint8)], axis=1)
    return rows.shape[1], rows.tobytes()


@pytest.mark.parametrize('encoding,make', [
    ('rgb8', lambda x: x),
    ('bgr8', lambda x: x[..., ::-1]),
    ('rgba8', lambda x: np.dstack([x, np.full(x.shape[:2], 200, np.uint8)])),
    ('bgra8', lambda x: np.dstack([x[..., ::-1], np.zeros(x.shape[:2], np.uint8)])),
])
@pytest.mark.parametrize('pad', [0, 5])
def test_colour_encodings_give_the_same_rgb(rgb, encoding, make, pad):
    src = np.ascontiguousarray(make(rgb))
    step, data = payload(src, pad)
    out = imconv.raw_to_rgb(encoding, rgb.shape[0], rgb.shape[1], step, data)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, rgb)


def test_mono8_and_mono16_replicate_grey(rgb):
    grey = rgb[..., 0]
    out = imconv.raw_to_rgb('mono8', 6, 10, 10, grey.tobytes())
    np.testing.assert_array_equal(out, np.dstack([grey] * 3))
    wide = grey.astype(np.uint16) * 256 + 17          # high byte = grey
    for big, dtype in ((0, '<u2'), (1, '>u2')):
        data = wide.astype(dtype).tobytes()
        out = imconv.raw_to_rgb('mono16', 6, 10, 20, data, is_bigendian=big)
        np.testing.assert_array_equal(out[..., 1], grey)


def test_yuv422_matches_opencv(rgb):
    yuyv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUYV) if hasattr(cv2, 'COLOR_RGB2YUV_YUYV') \
        else None
    if yuyv is None:
        pytest.skip('this OpenCV cannot encode YUYV')
    out = imconv.raw_to_rgb('yuv422_yuy2', 6, 10, 20, yuyv.tobytes())
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 40  # chroma is subsampled


def test_result_does_not_alias_the_message_buffer(rgb):
    data = array.array('B', rgb.tobytes())
    out = imconv.raw_to_rgb('rgb8', 6, 10, 30, data)
    data[0] = (data[0] + 1) % 256
    assert out[0, 0, 0] == rgb[0, 0, 0]
    out[0, 0, 0] ^= 0xFF                              # writable
    assert not np.shares_memory(out, np.frombuffer(data, np.uint8))


@pytest.mark.parametrize('fields,reason', [
    (('32FC1', 6, 10, 40, 240), imconv.UNSUPPORTED),
    (('rgb8', 0, 10, 30, 0), imconv.ZERO_SIZE),
    (('rgb8', 6, 0, 0, 0), imconv.ZERO_SIZE),
    (('rgb8', 6, 10, 29, 174), imconv.WRONG_STEP),
    (('rgb8', 6, 10, 30, 179), imconv.SIZE_MISMATCH),
    (('rgb8', 6, 10, 30, 181), imconv.SIZE_MISMATCH),
    (('mono16', 6, 10, 10, 60), imconv.WRONG_STEP),
    (('yuv422', 6, 9, 18, 108), imconv.UNSUPPORTED),
])
def test_bad_fields_are_rejected_with_their_reason(fields, reason):
    encoding, h, w, step, size = fields
    with pytest.raises(imconv.ImageRejected) as info:
        imconv.raw_to_rgb(encoding, h, w, step, bytes(size))
    assert info.value.reason == reason
    assert '\n' not in str(info.value) and reason in str(info.value)


def test_rejection_is_an_input_error():
    from nl_tracker_ros.errors import InputError
    with pytest.raises(InputError):
        imconv.check_raw('rgb8', 2, 2, 6, 11)


def test_compressed_round_trip_and_corrupt_payload(rgb):
    ok, png = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    np.testing.assert_array_equal(imconv.compressed_to_rgb(png.tobytes()), rgb)
    with pytest.raises(imconv.ImageRejected) as info:
        imconv.compressed_to_rgb(png.tobytes()[:20] + b'garbage' * 10)
    assert info.value.reason == imconv.CORRUPT
    with pytest.raises(imconv.ImageRejected) as info:
        imconv.compressed_to_rgb(b'')
    assert info.value.reason == imconv.ZERO_SIZE


def test_rgb_to_raw_round_trip(rgb):
    h, w, step, data = imconv.rgb_to_raw(rgb)
    np.testing.assert_array_equal(imconv.raw_to_rgb('rgb8', h, w, step, data), rgb)
    with pytest.raises(imconv.InputError):
        imconv.rgb_to_raw(rgb[..., 0])
