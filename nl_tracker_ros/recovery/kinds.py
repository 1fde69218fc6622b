"""Kind words: which kind of object a command names, and how likely a box shows that kind.

The switch reads the joint model's relation features, 12x12 cells over the letterboxed frame in
a whole-frame search: a 20-pixel object covers one or two cells, so a star and a cross, or a
hexagon and a circle, look alike there, and the grounding itself barely reads the noun
(docs/results.md, "Unmatched descriptions"). ``KindClassifier`` looks at the box's own
pixels instead, cut from the frame at its resolution with some context around it and resized
to ``crop`` pixels, and tells the kinds it was trained on (the generated scenes' shapes and
photo sprites) and background apart.

Like the colour check, the kind check (``recovery.kind_threshold``) acts only on a command that
names exactly one of those kinds: any other noun ("the person in the red jacket") leaves it off,
as the classifier knows nothing about it.

Its vocabulary is its data's: the shipped classifier knows the generated scenes' kinds, the
world of the shipped embedded model; ``nl-tracker train-kinds --data`` fits one on a dataset's
categories (LaSOT's 70). So a classifier file records the model it goes with, and the policy
uses it only with those model weights.
"""
from __future__ import annotations

import json
import pathlib
import re
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from nl_tracker_ros.errors import CheckpointError
from nl_tracker_ros.model.identity import ModelIdentity
from nl_tracker_ros.model.weights_io import load_strict, read_metadata, read_tensors, \
    write_safetensors

BACKGROUND = 'background'   # the class of a box on no object
CONTEXT = 0.15              # a crop adds this share of the box size on each side


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class KindClassifier(nn.Module):
    """Logits (B, K) over ``kinds`` of box crops (B, 3, S, S) in 0..1."""

    def __init__(self, kinds: Sequence[str], dim: int = 96, crop: int = 40):
        super().__init__()
        self.kinds = tuple(kinds)
        self.crop = crop
        self.features = nn.Sequential(_conv(3, 32, 1), _conv(32, 48, 2), _conv(48, 64, 2),
                                      _conv(64, dim, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(dim, len(self.kinds))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(crops))


def crops(image: np.ndarray, boxes_xywh, size: int) -> torch.Tensor:
    """Boxes (n, 4) xywh of an RGB uint8 frame, each with ``CONTEXT`` around it, resized to
    ``size`` pixels: (n, 3, size, size) float in 0..1; outside the frame is black.

    Not ``preprocessing.warp_crop``: boxes are mostly shrunk here, which wants INTER_AREA (its
    bilinear sampling aliases a 130-pixel box at 40 pixels), and no padding mask is needed."""
    out = np.zeros((len(boxes_xywh), size, size, 3), dtype=np.uint8)
    for i, (x, y, w, h) in enumerate(np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)):
        w, h = max(w, 1.0), max(h, 1.0)
        sx, sy = size / (w * (1 + 2 * CONTEXT)), size / (h * (1 + 2 * CONTEXT))
        affine = np.array([[sx, 0, -(x - CONTEXT * w) * sx], [0, sy, -(y - CONTEXT * h) * sy]])
        out[i] = cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_AREA,
                                borderMode=cv2.BORDER_CONSTANT)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


def named_kind(text: str, kinds: Sequence[str]) -> str | None:
    """The one kind of ``kinds`` that ``text`` names ('coffee cup' before 'cup'), or None when
    it names none or several (which of them is the target is then a question of grammar)."""
    names = sorted((k for k in kinds if k != BACKGROUND), key=len, reverse=True)
    if not names:
        return None
    found = set(re.findall(r'\b(' + '|'.join(map(re.escape, names)) + r')\b', text.lower()))
    return found.pop() if len(found) == 1 else None


class KindCheck:
    """A classifier on a device, answering how likely a box of a frame shows a kind."""

    def __init__(self, classifier: KindClassifier, device: str | torch.device = 'cpu'):
        self.device = torch.device(device)
        self.classifier = classifier.to(self.device).eval()

    def named(self, text: str) -> str | None:
        """The kind the classifier knows that ``text`` names (None: the check stays off)."""
        return named_kind(text, self.classifier.kinds)

    @torch.inference_mode()
    def probability(self, image: np.ndarray, box_xywh, kind: str) -> float:
        """The probability that ``box_xywh`` of the RGB uint8 ``image`` shows ``kind``."""
        x = crops(image, [box_xywh], self.classifier.crop).to(self.device)
        p = torch.softmax(self.classifier(x).float(), -1)[0]
        return float(p[self.classifier.kinds.index(kind)])


FORMAT = 'nl_tracker_ros.kinds'
WHAT = 'kind classifier'


def save_classifier(path: str | pathlib.Path, classifier: KindClassifier, model: ModelIdentity,
                    data: dict) -> None:
    """Write the classifier's weights (safetensors) with what it fits in the metadata: its kinds,
    crop size and width, the model whose tracker it checks (``model``) and its ``data``."""
    width = classifier.head.in_features
    write_safetensors(path, classifier.state_dict(), {
        'format': FORMAT, 'crop': str(classifier.crop), 'kinds': json.dumps(classifier.kinds),
        'dim': str(width), **model.metadata(), 'data': data})


def classifier_model(path: str | pathlib.Path) -> ModelIdentity:
    """The model a classifier file was fitted for (read from its header only)."""
    meta = read_metadata(path, WHAT)
    return ModelIdentity.from_metadata(meta, path, WHAT)


def load_classifier(path: str | pathlib.Path) -> KindClassifier:
    """A classifier from ``save_classifier``'s file, built from its metadata (strict; names what
    does not fit)."""
    path = pathlib.Path(path)
    meta = read_metadata(path, WHAT)
    try:
        kinds, crop, dim = json.loads(meta['kinds']), int(meta['crop']), int(meta['dim'])
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ValueError('kinds is not a list of names')
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f'{WHAT} {path}: unreadable, expected a file written by '
                              f'save_classifier ({type(exc).__name__}: {exc})') from None
    classifier = KindClassifier(kinds, dim, crop)
    load_strict(classifier, read_tensors(path, WHAT), f'{WHAT} {path}',
                target='its own kinds and width')
    return classifier.eval()
