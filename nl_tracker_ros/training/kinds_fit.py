"""Fit the ``KindClassifier`` on box crops (``nl-tracker train-kinds``).

No model is involved: per sampled frame, the box of an object in view, jittered as a tracker's
box would be, is a crop of that object's kind; a stretch of background of the target's size is
a crop of ``BACKGROUND``. Two sources:

- generated scenes (``collect_crops``): the target and each distractor with at least
  ``min_visible`` of its pixels unhidden; the kinds are the generator's shapes and sprites;
- a dataset whose sequences name their target's category (``collect_dataset_crops``; LaSOT's
  70 classes): the target under its category; the kinds are the categories found.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from nl_tracker_ros.boxes import iou_xywh, jitter_xywh
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.recovery.kinds import BACKGROUND, KindClassifier, crops
from nl_tracker_ros.training.optim import warmup_cosine


def scene_kinds() -> tuple[str, ...]:
    """The generated scenes' kinds, then ``BACKGROUND``: the classes of a fitted classifier."""
    from nl_tracker_ros.scenes.appearance import SHAPES, SPRITES
    return (*SHAPES, *SPRITES, BACKGROUND)


@dataclasses.dataclass(frozen=True)
class KindsFitConfig:
    """Data and schedule of ``fit_kinds``."""

    scenes: int = 2000              # generated scenes to cut crops from
    seed: int = 4                   # scene seed (model training used 0-3; held out: 10000+)
    preset: str = 'train'           # scene recipe mix
    width: int = 320
    height: int = 240
    frames_per_sequence: int = 6    # sampled frames per scene or sequence
    max_sequences: int = 0          # --data: use this many sequences, spread evenly (0: all)
    min_visible: float = 0.5        # an object's crop needs this share of its pixels unhidden
    jitter: float = 0.1             # box centre and log-size noise, as a share of its size
    dim: int = 96                   # classifier width
    crop: int = 40                  # crop side in pixels
    steps: int = 6000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    threads: int = 0                # torch CPU threads; 0 = torch's default

    def __post_init__(self):
        for name in ('scenes', 'frames_per_sequence', 'steps', 'batch_size', 'dim', 'crop'):
            if getattr(self, name) < 1:
                raise ConfigError(f'kinds.{name}: expected >= 1, got {getattr(self, name)}')
        if self.max_sequences < 0:
            raise ConfigError(f'kinds.max_sequences: expected >= 0, got {self.max_sequences}')
        for name in ('min_visible', 'jitter'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f'kinds.{name}: expected 0..1, got {getattr(self, name)}')


@dataclasses.dataclass(frozen=True, eq=False)
class CropSet:
    """Crops (uint8, N x 3 x S x S) and the index of each one's kind in ``kinds``."""

    crops: torch.Tensor
    label: np.ndarray               # (N,) int
    kinds: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.label)


def _background(rng, size, objects, width, height, tries: int = 10):
    """A box of ``size`` that overlaps no object much (None when none was found)."""
    w, h = min(size[0], width - 1), min(size[1], height - 1)
    for _ in range(tries):
        box = (float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h)), w, h)
        if all(float(iou_xywh(box, o)) < 0.1 for o in objects):
            return box
    return None


def collect_crops(config: KindsFitConfig, seed: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> CropSet:
    """Crops of generated scenes (see the module docstring); ``seed`` overrides
    ``config.seed`` (held-out checks)."""
    from nl_tracker_ros.scenes import distractors, get_mix, plan_scene, render_scene

    seed = config.seed if seed is None else seed
    kinds = scene_kinds()
    mix = get_mix(config.preset)
    rng = np.random.default_rng([seed, 11])
    images, labels = [], []
    for i in range(config.scenes):
        recipe = mix.sample(np.random.default_rng([seed, i, 0]), config.width, config.height,
                            None)
        plan = plan_scene(recipe, seed, i)
        frames = list(render_scene(plan))
        picks = rng.choice(len(frames), min(config.frames_per_sequence, len(frames)),
                           replace=False)
        for t in sorted(picks.tolist()):
            f = frames[t]
            others = distractors(plan, t)
            objects = [(spec, box) for spec, box, seen in others if seen >= config.min_visible]
            if f.box_xywh is not None and f.visible >= config.min_visible:
                objects.append((plan.target_seen.spec, f.box_xywh))
            boxes = [jitter_xywh(box, rng, config.jitter, config.jitter) for _, box in objects]
            labels += [kinds.index(spec.kind) for spec, _ in objects]
            everything = [box for _, box, _ in others]
            if f.box_xywh is not None:
                everything.append(f.box_xywh)
            side = plan.target_seen.area ** 0.5
            size = f.box_xywh[2:] if f.box_xywh is not None else (side, side)
            back = _background(rng, size, everything, config.width, config.height)
            if back is not None:
                boxes.append(back)
                labels.append(kinds.index(BACKGROUND))
            if boxes:
                images.append((crops(f.image, boxes, config.crop) * 255).round()
                              .to(torch.uint8))
        if progress:
            progress(i + 1, config.scenes)
    if not labels:
        raise ConfigError('kinds fit: no crops (no object was in view)')
    return CropSet(torch.cat(images), np.array(labels), kinds)


def collect_dataset_crops(sequences, config: KindsFitConfig, seed: int | None = None,
                          progress: Callable[[int, int], None] | None = None,
                          kinds: tuple[str, ...] | None = None) -> CropSet:
    """Crops of annotated sequences (``training.fit_data.FitSequence``) that name their
    target's category: per sampled frame with the target in view, its jittered box under its
    category and one background box of its size. The kinds are the categories found, sorted,
    then ``BACKGROUND``; or ``kinds`` (a fitted classifier's), and sequences of other
    categories are left out, as are sequences without one."""
    seed = config.seed if seed is None else seed
    named = [s for s in sequences if s.category and (kinds is None or s.category in kinds)]
    if not named:
        raise ConfigError('kinds fit: no sequence names its category; expected a dataset with '
                          'categories, such as LaSOT (<class>/<class>-N folders)')
    kinds = kinds or (*sorted({s.category for s in named}), BACKGROUND)
    rng = np.random.default_rng([seed, 11])
    images, labels = [], []
    for i, seq in enumerate(named):
        usable = seq.usable()
        picks = rng.choice(usable, min(config.frames_per_sequence, len(usable)), replace=False) \
            if len(usable) else []
        for t in sorted(int(t) for t in picks):
            image = seq.load_frame(t)
            box = seq.box(t)
            boxes = [jitter_xywh(box, rng, config.jitter, config.jitter)]
            label = [kinds.index(seq.category)]
            back = _background(rng, box[2:], [box], image.shape[1], image.shape[0])
            if back is not None:
                boxes.append(back)
                label.append(kinds.index(BACKGROUND))
            images.append((crops(image, boxes, config.crop) * 255).round().to(torch.uint8))
            labels += label
        if progress:
            progress(i + 1, len(named))
    if not labels:
        raise ConfigError('kinds fit: no crops (no target was in view)')
    return CropSet(torch.cat(images), np.array(labels), kinds)


def fit_kinds(data: CropSet, config: KindsFitConfig, seed: int = 0, log_every: int = 100,
              progress: Callable[[int, float], None] | None = None) -> KindClassifier:
    """Train a fresh classifier with cross-entropy on crops mirrored at random (a mirrored
    crop shows the same kind), each kind weighted by its inverse frequency."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    classifier = KindClassifier(data.kinds, config.dim, config.crop)
    opt = torch.optim.AdamW(classifier.parameters(), lr=config.lr,
                            weight_decay=config.weight_decay)
    sched = warmup_cosine(opt, config.steps)
    counts = np.bincount(data.label, minlength=len(data.kinds)).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
                          / len(data.kinds), dtype=torch.float32)
    classifier.train()
    total = 0.0
    for step in range(1, config.steps + 1):
        idx = rng.integers(len(data), size=config.batch_size)
        x = data.crops[idx].float() / 255.0
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)[:, None, None, None]
        x = torch.where(flip, x.flip(-1), x)
        loss = torch.nn.functional.cross_entropy(classifier(x),
                                                 torch.from_numpy(data.label[idx]),
                                                 weight=weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach())
        if progress and (step % log_every == 0 or step == config.steps):
            progress(step, total / (log_every if step % log_every == 0 else step % log_every))
            total = 0.0
    return classifier.eval()


@torch.no_grad()
def probabilities(classifier: KindClassifier, data: CropSet, batch: int = 512) -> np.ndarray:
    """(N, K) class probabilities of every crop of ``data``."""
    classifier.eval()
    return np.concatenate([torch.softmax(classifier(data.crops[s:s + batch].float() / 255.0),
                                         -1).numpy() for s in range(0, len(data), batch)])


def check_rates(probs: np.ndarray, data: CropSet, threshold: float) -> dict[str, float]:
    """What the kind check does at ``threshold`` on ``data``: the share of object crops it
    keeps under their own kind ('kept'), the share of (object crop, other kind) pairs it
    rejects ('rejected_other'), and the share of background crops it rejects under every
    kind ('rejected_background')."""
    back = data.kinds.index(BACKGROUND)
    objects = data.label != back
    named = np.arange(len(data.kinds)) != back            # the kinds a command can name
    own = probs[np.arange(len(data)), data.label]
    other = probs[objects].copy()
    other[np.arange(objects.sum()), data.label[objects]] = np.nan     # not another kind
    other = other[:, named]
    return {'kept': float((own[objects] >= threshold).mean()),
            'rejected_other': float((other[~np.isnan(other)] < threshold).mean()),
            'rejected_background': float((probs[~objects][:, named] < threshold).all(1).mean())
            if (~objects).any() else float('nan'),
            'accuracy': float((probs.argmax(1) == data.label).mean())}
