"""What scene objects look like: shapes, colours, textures, photo sprites and backgrounds.

Everything here is a pure function of its arguments (no global random state), so a scene is
reproducible from its seed. Patches are returned as float32 RGB in 0..255 plus a float32 alpha
in 0..1; the generator composites them and derives ground truth from alpha >= 0.5.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import cv2
import numpy as np

SHAPES = ('circle', 'square', 'triangle', 'star', 'ring', 'cross', 'diamond', 'hexagon')
TEXTURES = ('plain', 'striped', 'dotted', 'checkered')


@dataclasses.dataclass(frozen=True)
class SpriteSource:
    """A region cut from a scikit-image photograph: image name, crop (x0, y0, x1, y1), mask."""

    noun: str
    image: str
    crop: tuple[int, int, int, int]
    mask: str  # 'ellipse', 'rect' or 'silhouette' (the image is a binary silhouette)


SPRITES = {
    'cat': SpriteSource('cat', 'chelsea', (40, 0, 400, 300), 'ellipse'),
    'astronaut': SpriteSource('astronaut', 'astronaut', (120, 5, 340, 300), 'ellipse'),
    'coffee cup': SpriteSource('coffee cup', 'coffee', (75, 20, 480, 390), 'ellipse'),
    'rocket': SpriteSource('rocket', 'rocket', (302, 128, 344, 405), 'rect'),
    'coin': SpriteSource('coin', 'coins', (305, 12, 367, 76), 'ellipse'),
    'logo': SpriteSource('logo', 'logo', (0, 0, 500, 500), 'ellipse'),
    'horse': SpriteSource('horse', 'horse', (0, 0, 400, 328), 'silhouette'),
    'space shuttle': SpriteSource('space shuttle', 'astronaut', (355, 0, 462, 285), 'ellipse'),
}
# Photographs usable as backgrounds, with the sprite nouns each one shows (a scene never puts
# a sprite over the photograph it was cut from, which would add an undescribed twin).
BACKGROUNDS = {
    'astronaut': ('astronaut', 'space shuttle'), 'coffee': ('coffee cup',), 'chelsea': ('cat',),
    'rocket': ('rocket',), 'hubble_deep_field': (), 'immunohistochemistry': (), 'retina': (),
    'camera': (), 'moon': (), 'brick': (), 'grass': (), 'gravel': (), 'coins': ('coin',),
    'cell': (), 'page': (), 'text': (),
}
OCCLUDER_TEXTURES = ('brick', 'grass', 'gravel', 'moon', 'camera', 'cell')


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
    """Appearance of one object; ``kind`` is a shape name or a sprite noun."""

    kind: str
    colour: str = ''        # colour word; '' for sprites
    texture: str = 'plain'
    rgb: tuple[int, int, int] = (0, 0, 0)
    aspect: float = 1.0     # height / width of the unrotated object
    flip: bool = False      # sprites: mirrored

    @property
    def is_sprite(self) -> bool:
        """True for photo sprites (no colour or texture words)."""
        return self.kind in SPRITES


@functools.lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """A scikit-image photograph as RGB uint8 (grey images are replicated to 3 channels)."""
    import skimage.data
    img = getattr(skimage.data, name)()
    if img.dtype == bool:
        img = np.where(img, 255, 0).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3])
    img.setflags(write=False)
    return img


@functools.lru_cache(maxsize=None)
def sprite_master(noun: str) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution (rgb float32, alpha float32) of a sprite, cut out once per process."""
    src = SPRITES[noun]
    x0, y0, x1, y1 = src.crop
    img = photo(src.image)[y0:y1, x0:x1].astype(np.float32)
    h, w = img.shape[:2]
    if src.mask == 'silhouette':
        alpha = (img[..., 0] < 128).astype(np.float32)  # skimage's horse: black on white
        # Give the silhouette a coat: brown with a soft vertical shading.
        shade = np.linspace(1.1, 0.75, h, dtype=np.float32)[:, None, None]
        img = np.broadcast_to(np.float32([120, 75, 40]) * shade, (h, w, 3)).copy()
        alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
    elif src.mask == 'ellipse':
        m = np.zeros((h * 4, w * 4), np.uint8)
        cv2.ellipse(m, (w * 2, h * 2), (w * 2 - 2, h * 2 - 2), 0, 0, 360, 255, -1, cv2.LINE_AA)
        alpha = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    else:
        alpha = np.ones((h, w), np.float32)
    return img, alpha


def shape_polygons(kind: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Unit-size outline(s) of a shape in [-0.5, 0.5]^2: (filled polygons, holes)."""
    def circle(r, n=48):
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)

    def regular(n, r=0.5, start=-np.pi / 2):
        t = start + np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)

    if kind == 'circle':
        return [circle(0.5)], []
    if kind == 'ring':
        return [circle(0.5)], [circle(0.28)]
    if kind == 'square':
        return [np.array([[-.5, -.5], [.5, -.5], [.5, .5], [-.5, .5]])], []
    if kind == 'diamond':
        return [np.array([[0, -.5], [.5, 0], [0, .5], [-.5, 0]])], []
    if kind == 'triangle':
        return [np.array([[0, -.5], [.5, .43], [-.5, .43]])], []
    if kind == 'hexagon':
        return [regular(6, start=0)], []
    if kind == 'star':
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 0.5, 0.21)
        return [np.stack([r * np.cos(t), r * np.sin(t)], 1)], []
    if kind == 'cross':
        a, b = 0.5, 0.17
        return [np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a],
                          [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b]])], []
    raise ValueError(f'unknown shape {kind!r}')


def _texture(spec: ObjectSpec, h: int, w: int, period: float) -> np.ndarray:
    """(h, w, 3) float32 fill of a shape: its colour, the pattern in a darker shade."""
    base = np.float32(spec.rgb)
    dark = base * 0.45 if sum(spec.rgb) > 120 else np.float32([150, 150, 150])
    shade = np.linspace(1.08, 0.86, h, dtype=np.float32)[:, None, None]
    if spec.texture == 'plain':
        return np.broadcast_to(base * shade, (h, w, 3))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    p = max(period, 2.0)
    if spec.texture == 'striped':
        sel = ((xx + yy) / p) % 2 < 1
    elif spec.texture == 'dotted':
        sel = ((xx % p - p / 2) ** 2 + (yy % p - p / 2) ** 2) < (p * 0.28) ** 2
    else:  # checkered
        sel = ((xx // p) + (yy // p)) % 2 < 1
    out = np.where(sel[..., None], dark, base) * shade
    return out.astype(np.float32)


def render(spec: ObjectSpec, size: float, angle: float,
           centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Draw ``spec`` with extent ``size`` px, rotated ``angle`` degrees, centred at ``centre``.

    Returns (rgb float32 (h, w, 3), alpha float32 (h, w), x0, y0): the patch and the integer
    frame position of its top-left pixel. Subpixel centres are honoured for shapes.
    """
    cx, cy = centre
    if spec.is_sprite:
        return _render_sprite(spec, size, cx, cy)
    w_obj = size / math.sqrt(spec.aspect) if spec.aspect != 1 else size
    h_obj = size * math.sqrt(spec.aspect) if spec.aspect != 1 else size
    half = 0.5 * math.hypot(w_obj, h_obj) + 2
    x0, y0 = int(math.floor(cx - half)), int(math.floor(cy - half))
    n = int(math.ceil(2 * half)) + 2
    polys, holes = shape_polygons(spec.kind)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rot = np.array([[c, -s], [s, c]]) * np.array([w_obj, h_obj])[None, :]

    def to_px(p):  # unit coords -> patch coords, fixed point with 4 fractional bits
        q = p @ rot.T + np.array([cx - x0, cy - y0])
        return np.round(q * 16).astype(np.int32)

    mask = np.zeros((n, n), np.uint8)
    cv2.fillPoly(mask, [to_px(p) for p in polys], 255, cv2.LINE_AA, shift=4)
    if holes:
        cv2.fillPoly(mask, [to_px(p) for p in holes], 0, cv2.LINE_AA, shift=4)
    alpha = mask.astype(np.float32) / 255
    rgb = _texture(spec, n, n, period=max(size / 6, 3.0))
    return rgb, alpha, x0, y0


def _render_sprite(spec, size, cx, cy):
    rgb, alpha = sprite_master(spec.kind)
    h0, w0 = alpha.shape
    k = size / max(h0, w0)
    w, h = max(2, int(round(w0 * k))), max(2, int(round(h0 * k)))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    rgb = cv2.resize(rgb, (w, h), interpolation=interp)
    alpha = cv2.resize(alpha, (w, h), interpolation=interp)
    if spec.flip:
        rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    return rgb, alpha, x0, y0


def background_source(name: str, tint: tuple[float, float, float]) -> np.ndarray:
    """Background photograph as float32 RGB, grey images tinted so they are not all grey."""
    img = photo(name).astype(np.float32)
    if np.allclose(img[..., 0], img[..., 1]):
        img = img * np.float32(tint)
    return np.clip(img, 0, 255)


def occluder_patch(name: str, w: int, h: int, offset: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) float32 texture for an occluder board, cut from a photograph."""
    img = photo(name)
    ih, iw = img.shape[:2]
    k = max(w / iw, h / ih, 1.0)
    if k > 1:
        img = cv2.resize(img, (int(math.ceil(iw * k)), int(math.ceil(ih * k))))
        ih, iw = img.shape[:2]
    ox = offset[0] % max(1, iw - w + 1)
    oy = offset[1] % max(1, ih - h + 1)
    return img[oy:oy + h, ox:ox + w].astype(np.float32)
