"""Fit the AdaRS switch and the TSR selector on the frozen joint model (``nl-tracker
train-recovery``), for any preset and weights.

Samples come from annotated sequences (``training.fit_data``): dataset folders, or scenes
straight from the generator. Each sequence's tracker is started on its description with the box
of its first visible frame, then on sampled frames

- a local step around the target (jittered as the tracker's own error would) gives the
  relation-encoder features of a search crop, as the switch sees them while tracking;
- a global step gives them for the whole frame, as a whole-frame search sees them.

Each sample keeps the target box (or "not in the input": frames where the target is absent,
LaSOT's full occlusions and exits, TNL2K's absent boxes, are sampled like any other) and hard
negative boxes, in the input's normalised coordinates, and a description the target does not
fit (the language-side hard negative). What a dataset annotates is enough:

- hard negatives: ``partial_windows`` boxes that overlap the target partially, besides the
  background boxes the loss draws itself;
- the wrong description: another sequence's (of another category where the dataset names them).

Where a sequence is a generated scene, its plan gives better ones, used instead (``extras``):
the look-alike distractors' boxes (and local samples centred on one, as after a drift), and a
description that changes one of the target's attributes ("the purple star" for a red star,
``scenes.grammar.contradict``). With ``unmatched_share``, some sampled frames are also grounded
with a description that fits no object ("the star" where there is none,
``scenes.grammar.unmatched``; for a dataset, another sequence's description): every object is
then a negative.

The joint model is frozen, so features are computed once; the switch and selector then train
over the cache. With a run folder, each sequence's samples are kept as they are computed and
the fit saves its state every ``save_every`` steps, so an interrupted run resumes where it
stopped, with the same result.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
from typing import Callable, Iterable

import numpy as np
import torch

from nl_tracker_ros.boxes import iou_xywh, jitter_xywh
from nl_tracker_ros.errors import CheckpointError, ConfigError
from nl_tracker_ros.recovery.config import MethodConfig
from nl_tracker_ros.recovery.switch import build_modules
from nl_tracker_ros.training.fit_data import FitSequence
from nl_tracker_ros.training.optim import warmup_cosine
from nl_tracker_ros.training.recovery_loss import (RecoveryLossWeights, recovery_loss,
                                                   sample_proposals)

log = logging.getLogger(__name__)
ABSENT = (-2.0, -2.0, 0.1, 0.1)     # where an absent target is placed: off the map


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Data and schedule of ``fit_recovery``."""

    # generated scenes (train-recovery without --data): how many, which, what size
    scenes: int = 200
    seed: int = 4                   # scene seed and sampling seed (model training used 0-3)
    preset: str = 'train'           # scene recipe mix
    width: int = 320
    height: int = 240
    max_sequences: int = 0          # --data: use this many sequences, spread evenly (0: all)
    frames_per_sequence: int = 12   # sampled frames per sequence (each: one local or global)
    global_share: float = 0.3       # share of whole-frame samples
    drift_share: float = 0.25       # share of local samples centred on a distractor (scenes)
    # hard negatives per sample overlapping the target partially, where a sequence knows no
    # distractors
    partial_windows: int = 1
    extras: bool = True             # use what generated scenes know (distractors, attributes)
    # share of scenes whose template is a distractor's (a wrong acquisition): the switch must
    # follow the description, not the template (generated scenes only)
    wrong_template_share: float = 0.0
    # share of sampled frames that add a whole-frame sample grounded with a description that
    # fits no object (half of them name no colour): the switch must reject every object then
    unmatched_share: float = 0.0
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    save_every: int = 100           # steps between saved fit states in a run folder
    threads: int = 0                # torch CPU threads; 0 = torch's default
    loss: RecoveryLossWeights = RecoveryLossWeights()

    def __post_init__(self):
        for name in ('scenes', 'frames_per_sequence', 'steps', 'batch_size', 'save_every'):
            if getattr(self, name) < 1:
                raise ConfigError(f'fit.{name}: expected >= 1, got {getattr(self, name)}')
        for name in ('max_sequences', 'partial_windows'):
            if getattr(self, name) < 0:
                raise ConfigError(f'fit.{name}: expected >= 0, got {getattr(self, name)}')
        for name in ('global_share', 'drift_share', 'wrong_template_share',
                     'unmatched_share'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f'fit.{name}: expected 0..1, got {getattr(self, name)}')


# The FitConfig fields that decide the samples (the rest only the fit over them).
SAMPLING_FIELDS = ('scenes', 'seed', 'preset', 'width', 'height', 'max_sequences',
                   'frames_per_sequence', 'global_share', 'drift_share', 'partial_windows',
                   'extras', 'wrong_template_share', 'unmatched_share')


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureSample:
    """One cached input of the switch: features and boxes in its normalised coordinates."""

    features: torch.Tensor          # (C, S, S) relation-encoder features (fp16)
    target: torch.Tensor            # (4,) cxcywh; ignored where not ``present``
    present: bool                   # the target's centre lies inside the input
    hard: torch.Tensor              # (m, 4) cxcywh hard negatives inside the input
    text: torch.Tensor              # (L, D) the model's text tokens
    text_pad: torch.Tensor          # (L,) True at padding
    template: torch.Tensor          # (Nt, D) template tokens
    kind: str                       # 'local', 'global' or 'unmatched'
    wrong_text: torch.Tensor        # (L', D) tokens of a description the target does not fit
    wrong_pad: torch.Tensor         # (L',) True at padding


def _inside(boxes_cxcywh: np.ndarray) -> np.ndarray:
    c = boxes_cxcywh[:, :2]
    return ((c > 0) & (c < 1)).all(1)


def partial_windows(box_xywh, count: int, rng: np.random.Generator) -> list:
    """``count`` boxes about the size of ``box_xywh`` that overlap it partially (IoU 0.05 to
    0.3): a box half on the target is what the switch must not take for it."""
    x, y, w, h = box_xywh
    out = []
    while len(out) < count:
        angle = rng.uniform(0, 2 * np.pi)
        shift = rng.uniform(0.55, 0.8)                 # of the box size: IoU about 0.1-0.3
        s = np.exp(rng.uniform(-0.2, 0.2, 2))
        cand = (x + w * (shift * np.cos(angle) + (1 - s[0]) / 2),
                y + h * (shift * np.sin(angle) + (1 - s[1]) / 2), w * s[0], h * s[1])
        if 0.05 < float(iou_xywh(np.array(cand), np.array(box_xywh))) < 0.3:
            out.append(cand)
    return out


def _other_description(seq: FitSequence, pool, rng: np.random.Generator) -> str:
    """Another sequence's description, of another category where both are known."""
    texts = [t for t, c in pool if t != seq.text
             and (c is None or seq.category is None or c != seq.category)]
    texts = texts or [t for t, _ in pool if t != seq.text]
    if not texts:
        raise ConfigError(f'fit: sequence {seq.name} has no plan and no other description to '
                          f'contrast it with; expected sequences with different descriptions')
    return texts[int(rng.integers(len(texts)))]


def collect(tracker, sequences: Iterable[FitSequence], config: FitConfig,
            progress: Callable[[int, str], None] | None = None,
            descriptions: list[tuple[str, str | None]] | None = None,
            cache: str | pathlib.Path | None = None) -> list[FeatureSample]:
    """Run the frozen joint model over ``sequences``; see the module docstring.

    ``descriptions``: (text, category) of every sequence, for the wrong descriptions of
    sequences without a plan (default: those of ``sequences``, when it is a list). ``cache``: a
    folder where each sequence's samples are kept (``NNNNN.pt``) and read back on a rerun.
    ``progress(done, name)`` is called after each sequence.
    """
    from nl_tracker_ros.scenes.grammar import contradict, phrase, unmatched

    if descriptions is None:
        descriptions = [(s.text, s.category) for s in sequences] \
            if isinstance(sequences, list) else []
    cache = pathlib.Path(cache) if cache is not None else None
    rng = np.random.default_rng([config.seed, 7])
    samples: list[FeatureSample] = []
    for i, seq in enumerate(sequences):
        kept = cache / f'{i:05d}.pt' if cache is not None else None
        if kept is not None and kept.is_file():
            got, rng.bit_generator.state = _read_samples(kept)
            samples += got
            if progress:
                progress(i + 1, seq.name)
            continue
        start = len(samples)
        plan = seq.plan if config.extras else None
        visible = seq.usable()
        if len(visible) >= 2:
            t0 = int(visible[0])
            first = seq.box(t0)                           # template from the true box
            if plan is not None and config.wrong_template_share and \
                    rng.random() < config.wrong_template_share:
                lookalikes = seq.distractor_boxes(t0)
                if lookalikes:
                    first = lookalikes[int(rng.integers(len(lookalikes)))]
            tracker.set_command(seq.text, 0.0, box_xywh=first)
            tracker.update(seq.load_frame(t0), 0.0)
            text, pad = _tokens(tracker.text_features)
            if plan is not None:
                wrong_words = phrase(contradict(plan.description, plan.target_seen.spec, rng),
                                     rng)
            else:
                wrong_words = _other_description(seq, descriptions, rng)
            wrong_features = tracker.encode_text(wrong_words)
            wrong, wrong_pad = _tokens(wrong_features)
            if config.unmatched_share:   # (no draw otherwise: earlier fits stay reproducible)
                if plan is not None:
                    specs = [lay.spec for lay in plan.layers if lay.spec is not None]
                    nothing = tracker.encode_text(
                        unmatched(specs, rng, ('kind', 'colour-kind')[i % 2]))
                else:
                    nothing = wrong_features
            n = len(seq)
            picks = rng.choice(np.arange(t0 + 1, n), min(config.frames_per_sequence, n - t0 - 1),
                               replace=False)
            for t in sorted(picks.tolist()):
                samples += _frame_samples(tracker, seq, t, plan, config, rng,
                                          nothing if config.unmatched_share else None,
                                          text, pad, wrong, wrong_pad)
        if kept is not None:
            _write_samples(kept, samples[start:], rng.bit_generator.state)
        if progress:
            progress(i + 1, seq.name)
    tracker.reset()
    return samples


def _frame_samples(tracker, seq: FitSequence, t: int, plan, config: FitConfig, rng,
                   nothing, text, pad, wrong, wrong_pad) -> list[FeatureSample]:
    """The samples of frame ``t``: one local or global step, and an unmatched one maybe."""
    image = seq.load_frame(t)
    box = seq.box(t)
    last = box or _last_visible(seq, t)           # t > t0: frame t0 is visible
    others = seq.distractor_boxes(t) if plan is not None else []
    if rng.random() < config.global_share:
        step = tracker.global_step(image)
        kind = 'global'
    else:
        centre = last
        if others and rng.random() < config.drift_share:
            centre = others[int(rng.integers(len(others)))]
        # the search centre the tracker would have: the box moved by a fraction of its size
        step = tracker.local_step(image, jitter_xywh(centre, rng, 0.25, 0.1))
        kind = 'local'
    if plan is None and box is not None:
        others = partial_windows(box, config.partial_windows, rng)
    g = step.geometry
    tgt = g.frame_to_norm_cxcywh(np.array([box]))[0] if box is not None else np.array(ABSENT)
    hard = g.frame_to_norm_cxcywh(np.array(others)) if others else np.zeros((0, 4))
    out = [FeatureSample(
        features=step.head.features[0].detach().to(torch.float16).cpu(),
        target=torch.as_tensor(tgt, dtype=torch.float32),
        present=bool(box is not None and _inside(tgt[None])[0]),
        hard=torch.as_tensor(hard[_inside(hard)], dtype=torch.float32),
        text=text, text_pad=pad,
        template=tracker.template_tokens[0].detach().float().cpu(),
        kind=kind, wrong_text=wrong, wrong_pad=wrong_pad)]
    if nothing is not None and rng.random() < config.unmatched_share:
        objects = [*(seq.distractor_boxes(t) if plan is not None else []),
                   *([box] if box is not None else [])]
        out.append(_unmatched_sample(tracker, image, objects, nothing))
    return out


def _unmatched_sample(tracker, image, objects, text) -> FeatureSample:
    """The whole frame grounded with ``text`` (TextFeatures of a description that fits no
    object): no target, every object a hard negative."""
    command = tracker.text_features
    tracker.text_features = text          # ground this description, then restore the command
    try:
        step = tracker.global_step(image)
    finally:
        tracker.text_features = command
    hard = step.geometry.frame_to_norm_cxcywh(np.array(objects)) if objects \
        else np.zeros((0, 4))
    tokens, pad = _tokens(text)
    return FeatureSample(
        features=step.head.features[0].detach().to(torch.float16).cpu(),
        target=torch.tensor(ABSENT), present=False,
        hard=torch.as_tensor(hard[_inside(hard)], dtype=torch.float32),
        text=tokens, text_pad=pad,
        template=tracker.template_tokens[0].detach().float().cpu(),
        kind='unmatched', wrong_text=tokens, wrong_pad=pad)


def _write_samples(path: pathlib.Path, samples: list[FeatureSample], rng_state: dict) -> None:
    """Keep one sequence's samples and the sampling state after it (weights-only torch)."""
    rows = [{f.name: getattr(s, f.name) for f in dataclasses.fields(FeatureSample)}
            for s in samples]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    torch.save({'samples': rows, 'rng': json.dumps(rng_state)}, tmp)
    os.replace(tmp, path)


def _read_samples(path: pathlib.Path) -> tuple[list[FeatureSample], dict]:
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
        return [FeatureSample(**row) for row in obj['samples']], json.loads(obj['rng'])
    except Exception as exc:  # a torn or foreign file: say which, the run can be restarted
        raise CheckpointError(f'run folder samples {path}: unreadable ({type(exc).__name__}: '
                              f'{exc}); delete it to compute that sequence again') from None


def _tokens(text) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, D) float tokens and (L,) padding mask of a one-description TextFeatures."""
    pad = text.pad_mask if text.pad_mask is not None else torch.zeros(
        text.tokens.shape[:2], dtype=torch.bool)
    return text.tokens[0].detach().float().cpu(), pad[0].detach().bool().cpu()


def _last_visible(seq: FitSequence, t: int):
    for u in range(t - 1, -1, -1):
        box = seq.box(u)
        if box is not None:
            return box
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
                 progress: Callable[[int, dict], None] | None = None,
                 state: str | pathlib.Path | None = None) -> FitResult:
    """Train freshly initialised switch and selector modules on cached samples.

    ``state``: a file where the fit keeps its state every ``config.save_every`` steps and at
    the end; when it exists the fit goes on from it (same samples and settings: the same result
    as one run; a finished fit is returned as it is).
    """
    if not samples:
        raise ConfigError('fit: no samples (no sequence had two frames with the target in view)')
    torch.manual_seed(seed)
    switch, retrieval = build_modules(method, feat_dim, text_dim)
    params = list(switch.parameters()) + list(retrieval.selector.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = warmup_cosine(opt, config.steps)
    gen = torch.Generator().manual_seed(seed)
    parts = _Parts(switch, retrieval, opt, sched, gen)
    curve, acc, done = [], {}, 0
    if state is not None and pathlib.Path(state).is_file():
        done, curve, acc = parts.restore(state)
    switch.train()
    retrieval.train()
    for step in range(done + 1, config.steps + 1):
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
        if state is not None and (step % config.save_every == 0 or step == config.steps):
            parts.keep(state, step, curve, acc)
    switch.eval()
    retrieval.eval()
    return FitResult(switch, retrieval, curve)


@dataclasses.dataclass(frozen=True)
class _Parts:
    """Everything a fit carries from step to step, kept in and restored from one file."""

    switch: torch.nn.Module
    retrieval: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: object
    gen: torch.Generator

    def keep(self, path, step: int, curve: list, acc: dict) -> None:
        blob = {'step': step, 'switch': self.switch.state_dict(),
                'selector': self.retrieval.selector.state_dict(),
                'optimizer': self.opt.state_dict(), 'scheduler': self.sched.state_dict(),
                'generator': self.gen.get_state(), 'torch_rng': torch.get_rng_state(),
                'curve': json.dumps(curve), 'acc': json.dumps(acc)}
        path = pathlib.Path(path)
        tmp = path.with_name(path.name + '.tmp')
        torch.save(blob, tmp)
        os.replace(tmp, path)

    def restore(self, path) -> tuple[int, list, dict]:
        try:
            blob = torch.load(path, map_location='cpu', weights_only=True)
            self.switch.load_state_dict(blob['switch'])
            self.retrieval.selector.load_state_dict(blob['selector'])
            self.opt.load_state_dict(blob['optimizer'])
            self.sched.load_state_dict(blob['scheduler'])
            self.gen.set_state(blob['generator'])
            torch.set_rng_state(blob['torch_rng'])
            return int(blob['step']), json.loads(blob['curve']), json.loads(blob['acc'])
        except Exception as exc:  # torn file, other sizes: say which, the fit can restart
            raise CheckpointError(f'fit state {path}: unusable ({type(exc).__name__}: '
                                  f'{str(exc).splitlines()[0] if str(exc) else ""}); delete it '
                                  f'to fit from the start') from None


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
