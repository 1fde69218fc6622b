"""Training samples: (text, grounding image + box, template crop + box, search crops + boxes).

Any indexable of :class:`Sample` works as a dataset; :class:`SequenceSamples` makes them from
annotated :class:`~nl_tracker_ros.inputs.Sequence` objects (datasets on disk, the scenes
generator): per sample one sequence, one grounding frame (the whole frame, long edge resized and
padded; the template is cut from the same frame, around the true box or, with
``template_source='grounding'``, around the box the model grounds during training, as the
official code does) and ``search_frames`` later frames within ``max_gap``, cropped around a
jittered box. Frames where
the target is absent or its box unknown are never drawn. Sample ``i`` depends only on
``(seed, i)``, so runs and resumed runs see the same data.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence as SequenceABC
from typing import Literal

import numpy as np
import torch

from nl_tracker_ros import preprocessing as pp
from nl_tracker_ros.errors import ConfigError, InputError
from nl_tracker_ros.inputs.sequence import Sequence
from nl_tracker_ros.text import TextTokenizer

log = logging.getLogger(__name__)
_JITTER_TRIES = 10   # draws of the search jitter before falling back to the true box


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """How samples are drawn and jittered (defaults: the official configuration)."""

    search_frames: int = 2              # search crops per sample, tracked in order (SGTM memory)
    max_gap: int = 200                  # most frames between grounding and search frames
    search_center_jitter: float = 4.5   # centre shift, in sqrt(jittered box area) units
    search_scale_jitter: float = 0.5    # log-normal sigma of the box size jitter
    template_center_jitter: float = 0.0
    template_scale_jitter: float = 0.0
    pad: Literal['zero', 'mean'] = 'zero'
    # gt: template cut around the true box; grounding: around the grounded box during training
    # (official; tracking losses count only where grounding IoU > 0.5). 'grounding' keeps the
    # whole frame in every sample.
    template_source: Literal['gt', 'grounding'] = 'gt'

    def __post_init__(self):
        if self.search_frames < 1:
            raise ConfigError(f'samples.search_frames: expected >= 1, got {self.search_frames}')
        if self.max_gap < 1:
            raise ConfigError(f'samples.max_gap: expected >= 1, got {self.max_gap}')
        for name in ('search_center_jitter', 'search_scale_jitter', 'template_center_jitter',
                     'template_scale_jitter'):
            if getattr(self, name) < 0:
                raise ConfigError(f'samples.{name}: expected >= 0, got {getattr(self, name)}')
        if self.template_source not in ('gt', 'grounding'):
            raise ConfigError(f"samples.template_source: expected 'gt' or 'grounding', got "
                              f"{self.template_source!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class Sample:
    """One training sample; boxes are cxcywh normalised to their image, like the model output."""

    text: str
    ground_image: np.ndarray     # (G, G, 3) uint8: whole frame, long edge resized, padded
    ground_pad: np.ndarray       # (G, G) bool, True = padding
    ground_box: np.ndarray       # (4,)
    template_image: np.ndarray   # (T, T, 3) uint8
    template_pad: np.ndarray     # (T, T) bool
    template_box: np.ndarray     # (4,)
    search_images: np.ndarray    # (K, S, S, 3) uint8
    search_pads: np.ndarray      # (K, S, S) bool
    search_boxes: np.ndarray     # (K, 4)
    frame: np.ndarray | None = None                 # grounding frame ('grounding' templates)
    ground_geometry: pp.CropGeometry | None = None  # frame -> grounding input


@dataclasses.dataclass(frozen=True, eq=False)
class Batch:
    """Collated samples as tensors on one device."""

    text_ids: torch.Tensor       # (B, L) long
    text_mask: torch.Tensor      # (B, L) long, 1 = token
    ground: torch.Tensor         # (B, 3, G, G) normalised
    ground_pad: torch.Tensor     # (B, Ng) bool token mask
    ground_box: torch.Tensor     # (B, 4) cxcywh normalised
    template: torch.Tensor       # (B, 3, T, T)
    template_pad: torch.Tensor   # (B, Nt)
    search: torch.Tensor         # (K, B, 3, S, S)
    search_pad: torch.Tensor     # (K, B, Ns)
    search_box: torch.Tensor     # (K, B, 4)
    frames: list | None = None             # grounding frames, for 'grounding' templates
    ground_geometry: list | None = None    # their CropGeometry to the grounding input


def jitter_box(box_xywh, center: float, scale: float, rng: np.random.Generator) -> np.ndarray:
    """STARK-style jitter: size times exp(N(0, scale)), centre moved up to +-center/2 sizes."""
    b = np.asarray(box_xywh, dtype=np.float64)
    size = b[2:] * np.exp(rng.standard_normal(2) * scale)
    offset = math.sqrt(size[0] * size[1]) * center
    c = b[:2] + b[2:] / 2 + offset * (rng.random(2) - 0.5)
    return np.concatenate([c - size / 2, size])


def _usable(seq: Sequence) -> np.ndarray:
    b = seq.boxes_xywh
    ok = ~seq.absent & np.isfinite(b).all(1)
    ok[ok] &= (b[ok, 2] > 0) & (b[ok, 3] > 0)
    return np.flatnonzero(ok)


class SequenceSamples:
    """Training samples drawn from annotated sequences; ``len`` is the nominal epoch size."""

    def __init__(self, sequences: SequenceABC[Sequence], model_config,
                 config: SampleConfig = SampleConfig(), length: int = 10000, seed: int = 0):
        """Index the usable frames of ``sequences``; crop sizes come from ``model_config``."""
        self.sequences = []
        self.frames = []
        for seq in sequences:
            if not seq.text.strip():
                continue
            idx = _usable(seq)
            if len(idx):
                self.sequences.append(seq)
                self.frames.append(idx)
        if not self.sequences:
            raise InputError('training sequences: none has a description and a visible target')
        self.model_config = model_config
        self.config = config
        self.length = length
        self.seed = seed
        self._broken: set[int] = set()   # sequences with unreadable frames

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:
        """Sample ``index`` (any non-negative int; deterministic in (seed, index)).

        A sequence with an unreadable frame is logged and left out from then on (in this
        process), and the sample is drawn again from the others.
        """
        while True:
            rng = np.random.default_rng([self.seed, int(index), len(self._broken)])
            ok = [k for k in range(len(self.sequences)) if k not in self._broken]
            if not ok:
                raise InputError('training sequences: every sequence has unreadable frames')
            k = ok[int(rng.integers(len(ok)))]
            try:
                return self._draw(k, rng)
            except InputError as exc:
                self._broken.add(k)
                log.warning('training: leaving out sequence %s (%s)', self.sequences[k].name,
                            exc)

    def _draw(self, k: int, rng: np.random.Generator) -> Sample:
        seq, frames = self.sequences[k], self.frames[k]
        g = int(rng.choice(frames))
        search = self._search_frames(frames, g, rng)
        mc, sc = self.model_config, self.config
        frame = seq.load_frame(g)
        box = seq.boxes_xywh[g]
        ground = pp.grounding_resize(frame, mc.grounding_size, sc.pad)
        tbox = jitter_box(box, sc.template_center_jitter, sc.template_scale_jitter, rng)
        template = pp.crop_and_resize(frame, tbox, mc.template_factor, mc.template_size, sc.pad)
        crops, boxes = [], []
        for s in search:
            img = frame if s == g else seq.load_frame(s)
            for _ in range(_JITTER_TRIES):
                sbox = jitter_box(seq.boxes_xywh[s], sc.search_center_jitter,
                                  sc.search_scale_jitter, rng)
                crop = pp.crop_and_resize(img, sbox, mc.search_factor, mc.search_size, sc.pad)
                # A crop jittered wholly off the frame has no unpadded token: the model
                # refuses it, so draw the jitter again.
                if not crop.pad_mask[::mc.stride, ::mc.stride].all():
                    break
            else:
                crop = pp.crop_and_resize(img, seq.boxes_xywh[s], mc.search_factor,
                                          mc.search_size, sc.pad)
            crops.append(crop)
            boxes.append(crop.geometry.frame_to_norm_cxcywh(seq.boxes_xywh[s]))
        return Sample(
            seq.text, ground.image, ground.pad_mask,
            ground.geometry.frame_to_norm_cxcywh(box),
            template.image, template.pad_mask, template.geometry.frame_to_norm_cxcywh(box),
            np.stack([c.image for c in crops]), np.stack([c.pad_mask for c in crops]),
            np.stack(boxes),
            frame if sc.template_source == 'grounding' else None, ground.geometry)

    def _search_frames(self, frames: np.ndarray, g: int, rng) -> list[int]:
        n = self.config.search_frames
        after = frames[(frames > g) & (frames <= g + self.config.max_gap)]
        if len(after) == 0:  # last visible frame: look backwards, then at the frame itself
            after = frames[(frames < g) & (frames >= g - self.config.max_gap)]
        if len(after) == 0:
            after = np.array([g])
        pick = rng.choice(after, size=n, replace=len(after) < n)
        return sorted(int(s) for s in pick)


def collate(samples: list[Sample], tokenizer: TextTokenizer, stride: int,
            device: str | torch.device = 'cpu') -> Batch:
    """Stack samples into a :class:`Batch` on ``device`` (tokenising the texts)."""
    if not samples:
        raise InputError('batch: expected at least one sample')
    ids, mask = tokenizer.batch([s.text for s in samples])

    def masks(arr):  # (B, H, W) pixel padding -> (B, N) token padding
        return pp.mask_to_tokens(torch.from_numpy(np.ascontiguousarray(arr)), stride).to(device)

    def boxes(arr):
        return torch.from_numpy(np.asarray(arr, dtype=np.float32)).to(device)

    k = samples[0].search_images.shape[0]
    search = [pp.to_tensor(np.stack([s.search_images[i] for s in samples]), device)
              for i in range(k)]
    return Batch(
        torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device),
        pp.to_tensor(np.stack([s.ground_image for s in samples]), device),
        masks(np.stack([s.ground_pad for s in samples])),
        boxes(np.stack([s.ground_box for s in samples])),
        pp.to_tensor(np.stack([s.template_image for s in samples]), device),
        masks(np.stack([s.template_pad for s in samples])),
        torch.stack(search),
        torch.stack([masks(np.stack([s.search_pads[i] for s in samples])) for i in range(k)]),
        boxes(np.stack([s.search_boxes for s in samples]).transpose(1, 0, 2)),
        [s.frame for s in samples] if all(s.frame is not None for s in samples) else None,
        [s.ground_geometry for s in samples])
