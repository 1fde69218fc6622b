"""Box formats and overlap, shared by the tracker, metrics and messages.

Formats are named in every function: ``xywh`` (left, top, width, height), ``xyxy`` (left, top,
right, bottom), ``cxcywh`` (centre x, centre y, width, height). Pixel units unless a name says
``norm``. Functions take numpy arrays of shape (..., 4) or plain sequences.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from nl_tracker_ros.errors import InputError


def xywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def xyxy_to_xywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def xywh_to_cxcywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    return np.concatenate([b[..., :2] + b[..., 2:] / 2, b[..., 2:]], axis=-1)


def cxcywh_to_xywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    return np.concatenate([b[..., :2] - b[..., 2:] / 2, b[..., 2:]], axis=-1)


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a`` and ``b`` (broadcast over leading dims).

    Boxes with non-positive area have IoU 0 with everything.
    """
    a = xywh_to_xyxy(a)
    b = xywh_to_xyxy(b)
    lt = np.maximum(a[..., :2], b[..., :2])
    rb = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[..., 2:] - a[..., :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)
    union = area_a + area_b - inter
    with np.errstate(invalid='ignore', divide='ignore'):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return out


def validate_box_xywh(box: Sequence[float], image_size: tuple[int, int] | None = None,
                      name: str = 'box') -> tuple[float, float, float, float]:
    """Return ``box`` as a float tuple, or raise InputError saying what is wrong.

    ``image_size`` is (width, height); when given, the box must overlap the image and lie within
    it (a box touching the border is fine).
    """
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        raise InputError(f'{name}: expected 4 numbers (x, y, w, h), got {box!r}') from None
    if len(values) != 4:
        raise InputError(f'{name}: expected 4 numbers (x, y, w, h), got {len(values)}')
    if not all(math.isfinite(v) for v in values):
        raise InputError(f'{name}: expected finite numbers, got {values}')
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise InputError(f'{name}: expected positive width and height, got w={w:g} h={h:g}')
    if x < 0 or y < 0:
        raise InputError(f'{name}: expected a non-negative top-left corner, got x={x:g} y={y:g}')
    if image_size is not None:
        width, height = image_size
        if x + w > width or y + h > height:
            raise InputError(f'{name}: ({x:g}, {y:g}, {w:g}, {h:g}) extends outside the '
                             f'{width}x{height} image')
    return values


def jitter_xywh(box, rng: np.random.Generator, shift: float,
                scale: float) -> tuple[float, float, float, float]:
    """``box`` moved by normal noise of ``shift`` times its size per axis and resized about its
    centre by a log-normal factor of sigma ``scale``: where a tracker's box would be."""
    x, y, w, h = (float(v) for v in box)
    dx, dy = rng.normal(0.0, shift, 2) * (w, h)
    s = float(np.exp(rng.normal(0.0, scale)))
    return (x + dx + w * (1 - s) / 2, y + dy + h * (1 - s) / 2, w * s, h * s)
