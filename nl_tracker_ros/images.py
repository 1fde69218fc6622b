"""Image message payloads <-> RGB numpy arrays, with numpy and OpenCV only (no cv_bridge).

The functions take the message fields rather than the message, so they run and are tested without
rclpy. Bad frames raise :class:`ImageRejected`, whose ``reason`` is a short fixed phrase the node
counts in its status message.
"""
from __future__ import annotations

import cv2
import numpy as np

from nl_tracker_ros.errors import InputError

# Reject reasons (the keys counted in TrackerStatus.reject_reasons).
UNSUPPORTED = 'unsupported encoding'
ZERO_SIZE = 'zero size'
WRONG_STEP = 'wrong step'
SIZE_MISMATCH = 'data size mismatch'
CORRUPT = 'corrupt compressed image'

# encoding -> (channels, bytes per channel, OpenCV conversion to RGB or None)
ENCODINGS: dict[str, tuple[int, int, int | None]] = {
    'rgb8': (3, 1, None),
    'bgr8': (3, 1, cv2.COLOR_BGR2RGB),
    '8UC3': (3, 1, cv2.COLOR_BGR2RGB),  # OpenCV's default channel order, as cv_bridge assumes
    'rgba8': (4, 1, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, 1, cv2.COLOR_BGRA2RGB),
    '8UC4': (4, 1, cv2.COLOR_BGRA2RGB),
    'mono8': (1, 1, cv2.COLOR_GRAY2RGB),
    '8UC1': (1, 1, cv2.COLOR_GRAY2RGB),
    'mono16': (1, 2, cv2.COLOR_GRAY2RGB),
    'rgb16': (3, 2, None),
    'bgr16': (3, 2, cv2.COLOR_BGR2RGB),
    'bayer_rggb8': (1, 1, cv2.COLOR_BayerBG2RGB),  # OpenCV names Bayer by the 2nd row
    'bayer_bggr8': (1, 1, cv2.COLOR_BayerRG2RGB),
    'bayer_gbrg8': (1, 1, cv2.COLOR_BayerGR2RGB),
    'bayer_grbg8': (1, 1, cv2.COLOR_BayerGB2RGB),
    'yuv422': (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    'uyvy': (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': (2, 1, cv2.COLOR_YUV2RGB_YUY2),
    'yuyv': (2, 1, cv2.COLOR_YUV2RGB_YUY2),
}


class ImageRejected(InputError):
    """A frame that cannot be used; ``reason`` is one of the module's reason constants."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f'image rejected ({reason}): {detail}')
        self.reason = reason


def check_raw(encoding: str, height: int, width: int, step: int, size: int) -> None:
    """Raise ImageRejected unless the fields describe a frame ``raw_to_rgb`` can convert.

    ``size`` is ``len(data)``. Cheap (no pixel access), so the node runs it on every frame,
    including the ones later dropped as stale.
    """
    if encoding not in ENCODINGS:
        raise ImageRejected(UNSUPPORTED, f'{encoding!r}; expected one of {sorted(ENCODINGS)}')
    if height <= 0 or width <= 0:
        raise ImageRejected(ZERO_SIZE, f'{width}x{height}; expected a positive width and height')
    channels, depth, _ = ENCODINGS[encoding]
    row = width * channels * depth
    if step < row:
        raise ImageRejected(WRONG_STEP, f'step {step} < {row} bytes for a {width}-pixel '
                                        f'{encoding} row')
    if size != height * step:
        raise ImageRejected(SIZE_MISMATCH, f'{size} bytes; expected height*step = '
                                           f'{height}*{step} = {height * step}')
    if encoding.startswith(('yuv', 'uyvy')) and width % 2:
        raise ImageRejected(UNSUPPORTED, f'{encoding} with odd width {width}')


def raw_to_rgb(encoding: str, height: int, width: int, step: int, data,
               is_bigendian: int = 0) -> np.ndarray:
    """Convert a sensor_msgs/Image payload to an RGB uint8 (H, W, 3) array.

    ``data`` is any buffer (bytes, array.array, memoryview). 16-bit encodings keep the high
    byte. The result never aliases ``data``.
    """
    check_raw(encoding, height, width, step, len(data))
    channels, depth, code = ENCODINGS[encoding]
    buf = np.frombuffer(data, dtype=np.uint8).reshape(height, step)
    buf = buf[:, :width * channels * depth]
    if depth == 2:
        buf = buf.view('>u2' if is_bigendian else '<u2')
        buf = (buf >> 8).astype(np.uint8)
    img = buf.reshape(height, width, channels) if channels > 1 else buf.reshape(height, width)
    if code is None:
        return img.copy()  # never hand out a view of the message buffer
    return cv2.cvtColor(np.ascontiguousarray(img), code)


def compressed_to_rgb(data) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage payload (JPEG, PNG, ...) to RGB uint8 (H, W, 3)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageRejected(ZERO_SIZE, 'empty compressed payload')
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ImageRejected(CORRUPT, f'{buf.size} bytes that OpenCV cannot decode')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_raw(rgb: np.ndarray) -> tuple[int, int, int, bytes]:
    """(height, width, step, data) of an rgb8 sensor_msgs/Image holding ``rgb``."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f'image: expected RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}')
    h, w = rgb.shape[:2]
    return h, w, w * 3, np.ascontiguousarray(rgb).tobytes()
