"""Colour words: which colour a command names, and how much of a box shows it.

The twelve terms are the basic colour terms of English (Berlin and Kay's eleven, plus cyan),
each with one prototype sRGB value; the generated scenes draw their objects in exactly these.
A pixel shows a term when that term's prototype is its nearest in CIELAB, where distances follow
perceived difference, so "pink" and "purple", or "red" and "brown", stay apart.
"""
from __future__ import annotations

import re

import cv2
import numpy as np

from nl_tracker_ros.errors import InputError

# Well-separated prototypes, so that a colour word names exactly one of them.
COLOURS = {
    'red': (220, 30, 30), 'green': (40, 170, 60), 'blue': (30, 70, 220),
    'yellow': (240, 220, 30), 'orange': (250, 140, 20), 'purple': (140, 50, 180),
    'pink': (250, 130, 200), 'white': (245, 245, 245), 'black': (20, 20, 20),
    'cyan': (30, 210, 220), 'brown': (130, 80, 40), 'gray': (128, 128, 128),
}
SPELLINGS = {'grey': 'gray'}

_NAMES = tuple(COLOURS)
_WORDS = re.compile(r'\b(' + '|'.join((*COLOURS, *SPELLINGS)) + r')\b')
_LAB = cv2.cvtColor(np.array([list(COLOURS.values())], np.uint8),
                    cv2.COLOR_RGB2LAB)[0].astype(np.float32)


def named_colour(text: str) -> str | None:
    """The colour term ``text`` names, or None when it names none, or several different ones
    (which of them is the target's is then a question of grammar)."""
    found = {SPELLINGS.get(w, w) for w in _WORDS.findall(text.lower())}
    return found.pop() if len(found) == 1 else None


def colour_share(image: np.ndarray, box_xywh, colour: str, max_pixels: int = 4096) -> float:
    """Share of the pixels of ``box_xywh`` (frame pixels, clipped to the RGB uint8 ``image``)
    whose nearest colour term is ``colour``; 0 for a box outside the image.

    Boxes larger than ``max_pixels`` are read on an even grid of about that many pixels.
    """
    if colour not in COLOURS:
        raise InputError(f'colour: expected one of {", ".join(COLOURS)}, got {colour!r}')
    h, w = image.shape[:2]
    x, y, bw, bh = (float(v) for v in box_xywh)
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1, y1 = min(w, int(np.ceil(x + bw))), min(h, int(np.ceil(y + bh)))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    step = max(1, int(np.ceil(np.sqrt((x1 - x0) * (y1 - y0) / max_pixels))))
    pixels = np.ascontiguousarray(image[y0:y1:step, x0:x1:step]).reshape(1, -1, 3)
    lab = cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB)[0].astype(np.float32)
    nearest = ((lab[:, None] - _LAB[None]) ** 2).sum(-1).argmin(1)
    return float((nearest == _NAMES.index(colour)).mean())
