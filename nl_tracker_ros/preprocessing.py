"""Image preprocessing and box mapping between frame, crop, normalised and feature coordinates.

Coordinates are continuous pixel-edge coordinates: pixel ``i`` covers ``[i, i + 1)``. A crop is
an axis-aligned affine map ``crop = (frame - offset) * scale`` (``CropGeometry``); every box
mapping goes through it, so frame -> crop -> frame is exact.

The crops reproduce the official JointNLT input geometry (``sample_target``: a square window of
side ``ceil(sqrt(w * h) * factor)`` whose corner is rounded to whole pixels, zero padding, bilinear
resize; grounding: long edge resized to ``size``, padded at the bottom and right), but are
sampled with one ``cv2.warpAffine`` so that memory stays bounded however large the window is
(within a few grey levels of the official pixels). ``sampler='official'`` and
:func:`official_grounding_to_frame` reproduce the official pixels, padding masks and box mapping
exactly (checked against the official ``sample_target``, ``grounding_resize`` and tracker code
on random cases, outside this repository).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import cv2
import numpy as np
import torch

from nl_tracker_ros.boxes import cxcywh_to_xywh, xywh_to_cxcywh
from nl_tracker_ros.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PadMode = Literal['zero', 'mean']
Sampler = Literal['warp', 'official']


@dataclasses.dataclass(frozen=True)
class CropGeometry:
    """Affine map from frame to crop pixels: ``crop = (frame - offset) * scale`` per axis."""

    offset_x: float
    offset_y: float
    scale_x: float
    scale_y: float
    width: int   # crop size in pixels
    height: int

    def frame_to_crop(self, box_xywh: np.ndarray) -> np.ndarray:
        """Map (..., 4) xywh boxes from frame pixels to crop pixels."""
        b = np.asarray(box_xywh, dtype=np.float64)
        off = np.array([self.offset_x, self.offset_y, 0.0, 0.0])
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        return (b - off) * scale

    def crop_to_frame(self, box_xywh: np.ndarray) -> np.ndarray:
        """Map (..., 4) xywh boxes from crop pixels back to frame pixels (exact inverse)."""
        b = np.asarray(box_xywh, dtype=np.float64)
        off = np.array([self.offset_x, self.offset_y, 0.0, 0.0])
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        return b / scale + off

    def frame_to_norm_cxcywh(self, box_xywh: np.ndarray) -> np.ndarray:
        """Frame xywh -> cxcywh normalised by the crop size (the model's box format)."""
        size = np.array([self.width, self.height, self.width, self.height], dtype=np.float64)
        return xywh_to_cxcywh(self.frame_to_crop(box_xywh)) / size

    def norm_cxcywh_to_frame(self, box_norm_cxcywh: np.ndarray) -> np.ndarray:
        """Model output (cxcywh in [0, 1] of the crop) -> frame xywh pixels."""
        size = np.array([self.width, self.height, self.width, self.height], dtype=np.float64)
        b = np.asarray(box_norm_cxcywh, dtype=np.float64) * size
        return self.crop_to_frame(cxcywh_to_xywh(b))

    @property
    def frame_region(self) -> tuple[float, float, float, float]:
        """(x0, y0, w, h): the part of the frame, in pixels, that the crop covers (it may stick
        out of the frame)."""
        return (self.offset_x, self.offset_y, self.width / self.scale_x,
                self.height / self.scale_y)


@dataclasses.dataclass(frozen=True, eq=False)
class Crop:
    """A resized crop: RGB uint8 (H, W, 3), padding mask (H, W) bool True=padding, geometry."""

    image: np.ndarray
    pad_mask: np.ndarray
    geometry: CropGeometry


def validate_image(image, name: str = 'image') -> np.ndarray:
    """Return ``image`` as a C-contiguous RGB uint8 (H, W, 3) array or raise InputError."""
    if not isinstance(image, np.ndarray):
        raise InputError(f'{name}: expected a numpy array (H, W, 3) uint8, '
                         f'got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise InputError(f'{name}: expected dtype uint8, got {image.dtype}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f'{name}: expected shape (H, W, 3), got {image.shape}')
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f'{name}: expected a non-empty image, got {image.shape}')
    return np.ascontiguousarray(image)


def crop_window(box_xywh, factor: float) -> tuple[int, int, int]:
    """Square window ``(x0, y0, side)`` around ``box_xywh`` with side ``ceil(sqrt(wh)*factor)``.

    The corner is rounded to whole pixels as in the official ``sample_target``, so the sampled
    pixels match the official crop.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise InputError(f'crop box: expected finite (x, y, w, h) with w, h > 0, '
                         f'got {(x, y, w, h)}')
    if factor <= 0:
        raise InputError(f'crop factor: expected > 0, got {factor}')
    side = max(1, math.ceil(math.sqrt(w * h) * factor))
    x0 = int(round(x + 0.5 * w - 0.5 * side))
    y0 = int(round(y + 0.5 * h - 0.5 * side))
    return x0, y0, side


def _pad_value(image: np.ndarray, pad: PadMode) -> tuple[float, float, float]:
    if pad == 'zero':
        return (0.0, 0.0, 0.0)
    if pad == 'mean':
        return tuple(float(v) for v in cv2.mean(image)[:3])
    raise InputError(f"pad mode: expected 'zero' or 'mean', got {pad!r}")


def _axis_pad(n_out: int, scale: float, offset: float, n_in: int) -> np.ndarray:
    # A crop pixel is padding when its bilinear sample touches a pixel outside the frame.
    src = (np.arange(n_out) + 0.5) / scale - 0.5 + offset  # frame pixel-index coordinate
    return (src < 0) | (src > n_in - 1)


def warp_crop(image: np.ndarray, geometry: CropGeometry, pad: PadMode = 'zero') -> Crop:
    """Sample the crop described by ``geometry`` from ``image`` (bilinear, constant border)."""
    image = validate_image(image)
    g = geometry
    # Inverse map: crop pixel index -> frame pixel index (pixel centres at i + 0.5).
    m = np.array([[1.0 / g.scale_x, 0.0, g.offset_x + 0.5 / g.scale_x - 0.5],
                  [0.0, 1.0 / g.scale_y, g.offset_y + 0.5 / g.scale_y - 0.5]])
    out = cv2.warpAffine(image, m, (g.width, g.height),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=_pad_value(image, pad))
    h, w = image.shape[:2]
    pad_y = _axis_pad(g.height, g.scale_y, g.offset_y, h)
    pad_x = _axis_pad(g.width, g.scale_x, g.offset_x, w)
    return Crop(out, pad_y[:, None] | pad_x[None, :], g)


def crop_and_resize(image: np.ndarray, box_xywh, factor: float, output_size: int,
                    pad: PadMode = 'zero', sampler: Sampler = 'warp') -> Crop:
    """Square crop of side ``ceil(sqrt(wh)*factor)`` centred on the box, resized to output_size.

    Parts of the window outside the image are filled with zeros (``pad='zero'``, as the official
    code) or the image's mean colour (``pad='mean'``) and flagged in ``pad_mask``.

    ``sampler='official'`` reproduces the official code for parity checks: the same pixels bit
    for bit (pad, then ``cv2.resize``, which also turns the last image column/row at the
    right/bottom border into padding), at the cost of materialising the padded window, and the
    official box mapping (``map_box_back``), which puts the crop centre on the unrounded box
    centre, up to half a frame pixel off the sampled pixels.
    """
    if output_size < 1:
        raise InputError(f'crop output size: expected >= 1, got {output_size}')
    x0, y0, side = crop_window(box_xywh, factor)
    s = output_size / side
    if sampler == 'warp':
        geom = CropGeometry(float(x0), float(y0), s, s, output_size, output_size)
        return warp_crop(image, geom, pad)
    if sampler == 'official':
        x, y, w, h = (float(v) for v in box_xywh)
        geom = CropGeometry(x + (w - side) / 2, y + (h - side) / 2, s, s, output_size,
                            output_size)
        return _official_crop(validate_image(image), x0, y0, side, geom, pad)
    raise InputError(f"crop sampler: expected 'warp' or 'official', got {sampler!r}")


def _official_crop(image: np.ndarray, x0: int, y0: int, side: int, geom: CropGeometry,
                   pad: PadMode) -> Crop:
    h, w = image.shape[:2]
    x1, y1 = x0 + side, y0 + side
    # The '+ 1' is the official off-by-one: the last column/row becomes padding.
    lp, rp = max(0, -x0), max(x1 - w + 1, 0)
    tp, bp = max(0, -y0), max(y1 - h + 1, 0)
    inner = image[y0 + tp:y1 - bp, x0 + lp:x1 - rp]
    mask = np.ones((side, side), np.float64)
    if inner.size == 0:  # window entirely outside the image
        padded = np.empty((side, side, 3), np.uint8)
        padded[:] = np.array(_pad_value(image, pad)).round().astype(np.uint8)
    else:
        padded = cv2.copyMakeBorder(inner, tp, bp, lp, rp, cv2.BORDER_CONSTANT,
                                    value=_pad_value(image, pad))
        mask[tp:side - bp, lp:side - rp] = 0.0
    n = geom.width
    out = cv2.resize(padded, (n, n), interpolation=cv2.INTER_LINEAR)
    return Crop(out, cv2.resize(mask, (n, n), interpolation=cv2.INTER_LINEAR) > 0, geom)


def grounding_geometry(width: int, height: int, size: int) -> CropGeometry:
    """Geometry of the grounding input: long edge resized to ``size``, padded bottom/right."""
    if width < 1 or height < 1:
        raise InputError(f'grounding image: expected a non-empty image, got {width}x{height}')
    if width > height:
        ow, oh = size, max(1, int(size * height / width))
    else:
        ow, oh = max(1, int(size * width / height)), size
    return CropGeometry(0.0, 0.0, ow / width, oh / height, size, size)


def grounding_resize(image: np.ndarray, size: int = 320, pad: PadMode = 'zero') -> Crop:
    """Resize ``image`` keeping its aspect ratio so the long edge is ``size``; pad to square."""
    image = validate_image(image)
    h, w = image.shape[:2]
    g = grounding_geometry(w, h, size)
    ow, oh = round(g.scale_x * w), round(g.scale_y * h)
    out = np.empty((size, size, 3), dtype=np.uint8)
    out[:] = np.array(_pad_value(image, pad), dtype=np.float64).round().astype(np.uint8)
    out[:oh, :ow] = cv2.resize(image, (ow, oh), interpolation=cv2.INTER_LINEAR)
    mask = np.ones((size, size), dtype=bool)
    mask[:oh, :ow] = False
    return Crop(out, mask, g)


def official_grounding_to_frame(box_norm_cxcywh, geometry: CropGeometry,
                                image_size: tuple[int, int]) -> np.ndarray:
    """Grounding output -> frame xywh exactly as the official tracker maps it (parity checks).

    The box is rounded to whole pixels of the grounding input, cut to the resized image, and
    scaled by frame width / resized width on both axes. ``image_size`` is (width, height).
    """
    width, height = image_size
    ow = round(geometry.scale_x * width)
    oh = round(geometry.scale_y * height)
    c = np.round(np.asarray(box_norm_cxcywh, dtype=np.float64) * geometry.width)
    x1y1 = np.maximum(c[:2] - c[2:] / 2, 0.0)
    x2y2 = np.minimum(c[:2] + c[2:] / 2, (ow, oh))
    return np.concatenate([x1y1, np.clip(x2y2 - x1y1, 0.0, None)]) * (width / ow)


def crop_to_feature(box_xywh: np.ndarray, stride: int) -> np.ndarray:
    """Crop pixels -> feature-map cells (stride ``stride``)."""
    return np.asarray(box_xywh, dtype=np.float64) / stride


def feature_to_crop(box_xywh: np.ndarray, stride: int) -> np.ndarray:
    """Feature-map cells -> crop pixels (inverse of ``crop_to_feature``)."""
    return np.asarray(box_xywh, dtype=np.float64) * stride


def mask_to_tokens(pad_mask: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, H, W) bool padding mask -> (B, H/stride * W/stride) token mask.

    Nearest-neighbour downsampling (top-left pixel of each cell), as the official model does.
    """
    return pad_mask[..., ::stride, ::stride].flatten(-2)


def to_tensor(images: np.ndarray | list[np.ndarray], device: str | torch.device) -> torch.Tensor:
    """RGB uint8 (H, W, 3) or (B, H, W, 3) -> ImageNet-normalised float (B, 3, H, W) on device."""
    if isinstance(images, (list, tuple)):
        images = np.stack([validate_image(im) for im in images])
    elif not isinstance(images, np.ndarray):
        raise InputError(f'images: expected a numpy array, got {type(images).__name__}')
    elif images.ndim == 3:
        images = validate_image(images)[None]
    elif images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] != 3:
        raise InputError(f'images: expected (B, H, W, 3) uint8, got {images.shape} {images.dtype}')
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def clip_box_xywh(box_xywh, image_size: tuple[int, int], min_size: float = 1.0
                  ) -> tuple[float, float, float, float]:
    """Clip a box to the image (``image_size`` = (width, height)), keeping at least min_size.

    Same rule as the official ``clip_box``: the corners are clamped, then width and height are
    raised to ``min_size``.
    """
    width, height = image_size
    min_size = min(min_size, width, height)  # an image smaller than the margin
    x, y, w, h = (float(v) for v in box_xywh)
    x1 = min(max(0.0, x), width - min_size)
    y1 = min(max(0.0, y), height - min_size)
    x2 = min(max(min_size, x + w), width)
    y2 = min(max(min_size, y + h), height)
    return (x1, y1, max(min_size, x2 - x1), max(min_size, y2 - y1))
