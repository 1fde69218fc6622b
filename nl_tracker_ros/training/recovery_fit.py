"""Fit the AdaRS switch and the TSR selector on the frozen joint model (``nl-tracker
train-recovery``).

Samples come straight from the scene generator, so nothing is read from disk: each scene's
tracker is started on its description with the frame-1 box, then on sampled frames

- a local step around the target (jittered as the tracker's own error would, or centred on a
  distractor, as after a drift) gives the relation-encoder features of a search crop, as the
  switch sees them while tracking;
- a global step gives them for the whole frame, as a whole-frame search sees them.

Each sample keeps the target box (or "not in the input") and the distractors' boxes, in the
input's normalised coordinates: the distractors are the hard negatives. Each scene also gets a
description its target does not fit ("the purple star" for a red star,
``scenes.grammar.contradict``): the hard negative on the language side. With
``unmatched_share``, some sampled frames are also grounded with a description that fits no
object of the scene ("the star" where there is none, ``scenes.grammar.unmatched``): the features
are then those the switch sees after a command that matches nothing, and every object is a
negative. The joint model is frozen, so features are computed once; the switch and selector
then train over the cache.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable

import numpy as np
import torch

from nl_tracker_ros.boxes import jitter_xywh
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.recovery.config import MethodConfig
from nl_tracker_ros.recovery.switch import build_modules
from nl_tracker_ros.training.optim import warmup_cosine
from nl_tracker_ros.training.recovery_loss import (RecoveryLossWeights, recovery_loss,
                                                   sample_proposals)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Data and schedule of ``fit_recovery``."""

    scenes: int = 200               # generated scenes to draw samples from
    seed: int = 4                   # scene seed (model training used 0-3; held out: 10000+)
    preset: str = 'train'           # scene recipe mix
    width: int = 320
    height: int = 240
    frames_per_scene: int = 12      # sampled frames per scene (each: one local or global sample)
    global_share: float = 0.3       # share of whole-frame samples
    drift_share: float = 0.25       # share of local samples centred on a distractor
    # share of scenes whose template is a distractor's (a wrong acquisition): the switch must
    # follow the description, not the template
    wrong_template_share: float = 0.0
    # share of sampled frames that add a whole-frame sample grounded with a description that
    # fits no object (half of them name no colour): the switch must reject every object then
    unmatched_share: float = 0.0
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    threads: int = 0                # torch CPU threads; 0 = torch's default
    loss: RecoveryLossWeights = RecoveryLossWeights()

    def __post_init__(self):
        for name in ('scenes', 'frames_per_scene', 'steps', 'batch_size'):
            if getattr(self, name) < 1:
                raise ConfigError(f'fit.{name}: expected >= 1, got {getattr(self, name)}')
        for name in ('global_share', 'drift_share', 'wrong_template_share',
                     'unmatched_share'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f'fit.{name}: expected 0..1, got {getattr(self, name)}')


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureSample:
    """One cached input of the switch: features and boxes in its normalised coordinates."""

    features: torch.Tensor          # (C, S, S) relation-encoder features (fp16)
    target: torch.Tensor            # (4,) cxcywh; ignored where not ``present``
    present: bool                   # the target's centre lies inside the input
    hard: torch.Tensor              # (m, 4) cxcywh distractors inside the input
    text: torch.Tensor              # (L, D) the model's text tokens
    text_pad: torch.Tensor          # (L,) True at padding
    template: torch.Tensor          # (Nt, D) template tokens
    kind: str                       # 'local', 'global' or 'unmatched'
    wrong_text: torch.Tensor        # (L', D) tokens of a description the target does not fit
    wrong_pad: torch.Tensor         # (L',) True at padding


def _inside(boxes_cxcywh: np.ndarray) -> np.ndarray:
    c = boxes_cxcywh[:, :2]
    return ((c > 0) & (c < 1)).all(1)


def collect(tracker, config: FitConfig, progress: Callable[[int, int], None] | None = None
            ) -> list[FeatureSample]:
    """Run the frozen joint model over generated scenes; see the module docstring."""
    from nl_tracker_ros.scenes import distractor_boxes, get_mix, plan_scene, render_scene
    from nl_tracker_ros.scenes.grammar import contradict, phrase, unmatched

    mix = get_mix(config.preset)
    rng = np.random.default_rng([config.seed, 7])
    samples: list[FeatureSample] = []
    for i in range(config.scenes):
        recipe = mix.sample(np.random.default_rng([config.seed, i, 0]), config.width,
                            config.height, None)
        plan = plan_scene(recipe, config.seed, i)
        frames = list(render_scene(plan))
        visible = [t for t, f in enumerate(frames) if f.box_xywh is not None]
        if len(visible) < 2:
            continue
        t0 = visible[0]
        start = frames[t0].box_xywh                     # template from the true box
        if config.wrong_template_share and rng.random() < config.wrong_template_share:
            lookalikes = distractor_boxes(plan, t0)
            if lookalikes:
                start = lookalikes[int(rng.integers(len(lookalikes)))]
        tracker.set_command(plan.text, 0.0, box_xywh=start)
        tracker.update(frames[t0].image, 0.0)
        text, pad = _tokens(tracker.text_features)
        wrong, wrong_pad = _tokens(tracker.encode_text(
            phrase(contradict(plan.description, plan.target_seen.spec, rng), rng)))
        if config.unmatched_share:     # (no draw otherwise: earlier fits stay reproducible)
            specs = [lay.spec for lay in plan.layers if lay.spec is not None]
            nothing = tracker.encode_text(unmatched(specs, rng, ('kind', 'colour-kind')[i % 2]))
        picks = rng.choice(np.arange(t0 + 1, len(frames)),
                           min(config.frames_per_scene, len(frames) - t0 - 1), replace=False)
        for t in sorted(picks.tolist()):
            f = frames[t]
            last = f.box_xywh or _last_visible(frames, t)    # t > t0: frame t0 is visible
            others = distractor_boxes(plan, t)
            if rng.random() < config.global_share:
                step = tracker.global_step(f.image)
                kind = 'global'
            else:
                centre = last
                if others and rng.random() < config.drift_share:
                    centre = others[int(rng.integers(len(others)))]
                # the search centre the tracker would have: the box moved by a fraction of its size
                step = tracker.local_step(f.image, jitter_xywh(centre, rng, 0.25, 0.1))
                kind = 'local'
            g = step.geometry
            tgt = (g.frame_to_norm_cxcywh(np.array([f.box_xywh]))[0] if f.box_xywh is not None
                   else np.array([-2.0, -2.0, 0.1, 0.1]))
            hard = g.frame_to_norm_cxcywh(np.array(others)) if others else np.zeros((0, 4))
            samples.append(FeatureSample(
                features=step.head.features[0].detach().to(torch.float16).cpu(),
                target=torch.as_tensor(tgt, dtype=torch.float32),
                present=bool(f.box_xywh is not None and _inside(tgt[None])[0]),
                hard=torch.as_tensor(hard[_inside(hard)], dtype=torch.float32),
                text=text, text_pad=pad,
                template=tracker.template_tokens[0].detach().float().cpu(),
                kind=kind, wrong_text=wrong, wrong_pad=wrong_pad))
            if config.unmatched_share and rng.random() < config.unmatched_share:
                samples.append(_unmatched_sample(tracker, f, others, nothing))
        if progress:
            progress(i + 1, config.scenes)
    tracker.reset()
    return samples


def _unmatched_sample(tracker, frame, others, text) -> FeatureSample:
    """The whole frame grounded with ``text`` (TextFeatures of a description that fits no
    object): no target, every object a hard negative."""
    command = tracker.text_features
    tracker.text_features = text          # ground this description, then restore the command
    try:
        step = tracker.global_step(frame.image)
    finally:
        tracker.text_features = command
    objects = [*others, frame.box_xywh] if frame.box_xywh is not None else list(others)
    hard = step.geometry.frame_to_norm_cxcywh(np.array(objects)) if objects \
        else np.zeros((0, 4))
    tokens, pad = _tokens(text)
    return FeatureSample(
        features=step.head.features[0].detach().to(torch.float16).cpu(),
        target=torch.tensor([-2.0, -2.0, 0.1, 0.1]), present=False,
        hard=torch.as_tensor(hard[_inside(hard)], dtype=torch.float32),
        text=tokens, text_pad=pad,
        template=tracker.template_tokens[0].detach().float().cpu(),
        kind='unmatched', wrong_text=tokens, wrong_pad=pad)


def _tokens(text) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, D) float tokens and (L,) padding mask of a one-description TextFeatures."""
    pad = text.pad_mask if text.pad_mask is not None else torch.zeros(
        text.tokens.shape[:2], dtype=torch.bool)
    return text.tokens[0].detach().float().cpu(), pad[0].detach().bool().cpu()


def _last_visible(frames, t):
    for f in reversed(frames[:t]):
        if f.box_xywh is not None:
            return f.box_xywh
    return None


def _batch(samples: list[FeatureSample]):
    feats = torch.stack([s.features.float() for s in samples])
    target = torch.stack([s.target for s in samples])
    present = torch.tensor([s.present for s in samples])
    text, pad = _pad([(s.text, s.text_pad) for s in samples])
    wrong, wrong_pad = _pad([(s.wrong_text, s.wrong_pad) for s in samples])
    template = torch.stack([s.template for s in samples])
    return (feats, target, present, [s.hard for s in samples], text, pad, template, wrong,
            wrong_pad)


def _pad(texts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (L_i, D) token sets and their pad masks into (B, max L, D), (B, max L)."""
    length = max(len(t) for t, _ in texts)
    tokens = torch.zeros(len(texts), length, texts[0][0].shape[1])
    pad = torch.ones(len(texts), length, dtype=torch.bool)
    for i, (t, m) in enumerate(texts):
        tokens[i, :len(t)] = t
        pad[i, :len(t)] = m
    return tokens, pad


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Fitted modules (eval mode) and the logged loss parts."""

    switch: torch.nn.Module
    retrieval: torch.nn.Module
    curve: list[dict]          # per logged step: step, loss parts


def fit_recovery(samples: list[FeatureSample], method: MethodConfig, feat_dim: int,
                 text_dim: int, config: FitConfig, seed: int = 0, log_every: int = 50,
                 progress: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train freshly initialised switch and selector modules on cached samples."""
    if not samples:
        raise ConfigError('fit: no samples (every scene lacked a visible target)')
    torch.manual_seed(seed)
    switch, retrieval = build_modules(method, feat_dim, text_dim)
    params = list(switch.parameters()) + list(retrieval.selector.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = warmup_cosine(opt, config.steps)
    gen = torch.Generator().manual_seed(seed)
    switch.train()
    retrieval.train()
    curve, acc = [], {}
    for step in range(1, config.steps + 1):
        idx = torch.randint(len(samples), (min(config.batch_size, len(samples)),),
                            generator=gen).tolist()
        feats, target, present, hard, text, pad, template, wrong, wrong_pad = _batch(
            [samples[i] for i in idx])
        loss, stats = recovery_loss(switch, retrieval.selector, feats, target, text, pad,
                                    template, config.loss, gen, hard, present, wrong, wrong_pad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        for k, v in stats.items():
            acc[k] = acc.get(k, 0.0) + v
        if step % log_every == 0 or step == config.steps:
            n = log_every if step % log_every == 0 else step % log_every
            row = {'step': step, **{k: v / n for k, v in acc.items()}}
            curve.append(row)
            acc = {}
            if progress:
                progress(step, row)
    switch.eval()
    retrieval.eval()
    return FitResult(switch, retrieval, curve)


@torch.no_grad()
def separation(switch, samples: list[FeatureSample]) -> dict:
    """How well similarities split targets from distractors and background on ``samples``.

    Returns the target similarities, the best non-target similarity per sample (hard
    negatives and a ring of background boxes) and the target's similarity to a description it
    does not fit, for choosing thresholds.
    """
    pos, neg, wrong = [], [], []
    gen = torch.Generator().manual_seed(123)
    for s in samples:
        tgt = s.target if s.present else torch.tensor([-2.0, -2.0, 0.1, 0.1])
        boxes, _ = sample_proposals(tgt[None], 4, gen, [s.hard])
        text, _ = switch.embed_text(s.text[None], s.text_pad[None])
        sims, _ = switch(s.features[None].float(), boxes, text)
        if s.present:
            pos.append(float(sims[0, 0]))
            other, _ = switch.embed_text(s.wrong_text[None], s.wrong_pad[None])
            wrong.append(float(switch(s.features[None].float(), boxes[:, :1], other)[0][0, 0]))
        neg.append(float(sims[0, 1:].max()))
    return {'target': np.array(pos), 'best_other': np.array(neg), 'wrong_text': np.array(wrong)}
