"""What the recovery fits read: annotated sequences, from dataset folders or the scene generator.

A :class:`FitSequence` is one sequence as ``train-recovery`` and ``train-kinds`` use it: the
description, per-frame boxes and absence flags, frames on demand, and what else is known about
it. Real datasets annotate only the target, its description and when it is absent; LaSOT also
names each sequence's category (its folder, ``airplane-1`` -> airplane). Generated scenes know
more: their plan (``scenes.ScenePlan``) gives the look-alike distractors' boxes in every frame
and the attributes a contradicting description can change. The fits use that as an extra,
never as a requirement.

- :func:`dataset_sequences`: every sequence of dataset folders in the layouts the readers know
  (LaSOT, TNL2K, OTB99-Lang, and generated scenes, whose ``meta.json`` gives the plan back).
- :func:`generated_sequences`: scenes straight from the generator, frames rendered in memory
  (the same scenes ``nl-tracker scenes`` would write, without the JPEG round trip).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import re
from typing import Callable, Iterator

import numpy as np

from nl_tracker_ros.errors import InputError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class FitSequence:
    """One annotated sequence: boxes (N, 4) xywh pixels (NaN where unknown), absent (N,) bool,
    ``load_frame(t)`` -> RGB uint8 (H, W, 3)."""

    name: str
    text: str
    boxes_xywh: np.ndarray
    absent: np.ndarray
    load_frame: Callable[[int], np.ndarray]
    category: str | None = None     # the target's category, where the dataset names one
    plan: object | None = None      # scenes.ScenePlan of a generated scene, else None

    def __len__(self) -> int:
        return len(self.absent)

    def usable(self) -> np.ndarray:
        """Indices of the frames with the target in view and a box of positive size."""
        b = self.boxes_xywh
        ok = ~self.absent & np.isfinite(b).all(1)
        ok[ok] &= (b[ok, 2] > 0) & (b[ok, 3] > 0)
        return np.flatnonzero(ok)

    def box(self, t: int) -> tuple[float, float, float, float] | None:
        """The target's box in frame ``t``, None where it is absent or unknown."""
        if self.absent[t] or not np.isfinite(self.boxes_xywh[t]).all():
            return None
        return tuple(float(v) for v in self.boxes_xywh[t])

    def distractor_boxes(self, t: int) -> list:
        """The look-alikes' boxes in frame ``t`` where the sequence knows them, else []."""
        if self.plan is None:
            return []
        from nl_tracker_ros.scenes import distractor_boxes
        return distractor_boxes(self.plan, t)


_LASOT_NAME = re.compile(r'^(.+)-\d+$')


def category(seq) -> str | None:
    """The target category a dataset names for ``seq`` (an ``inputs.Sequence``): LaSOT's class,
    from the sequence name (``airplane-1``); None for datasets without categories."""
    if seq.dataset != 'lasot':
        return None
    m = _LASOT_NAME.match(seq.name)
    return m.group(1).lower() if m else None


def scene_plan(seq):
    """The generator's plan of a sequence written by ``nl-tracker scenes`` (from its
    ``meta.json``), or None when there is none or it no longer matches the sequence."""
    from nl_tracker_ros.config import from_dict
    from nl_tracker_ros.scenes import SceneRecipe, plan_scene
    from nl_tracker_ros.scenes.generator import GENERATOR_VERSION

    if seq.dataset != 'scenes' or not seq.frame_paths:
        return None
    meta_path = pathlib.Path(seq.frame_paths[0]).parent.parent / 'meta.json'
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get('generator_version') != GENERATOR_VERSION:
            raise ValueError(f'generator version {meta.get("generator_version")}, expected '
                             f'{GENERATOR_VERSION}')
        recipe = from_dict(SceneRecipe, meta['recipe'], 'recipe')
        plan = plan_scene(recipe, int(meta['seed']), int(meta['index']), meta['name'])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning('scene %s: its meta.json gives no plan (%s); using its annotations only',
                    seq.name, exc)
        return None
    if plan.text != seq.text or plan.recipe.frames != len(seq):
        log.warning('scene %s: meta.json does not match its frames or description; using its '
                    'annotations only', seq.name)
        return None
    return plan


def from_sequence(seq, extras: bool = True) -> FitSequence:
    """A FitSequence of an ``inputs.Sequence``; ``extras``: with a generated scene's plan."""
    plan = scene_plan(seq) if extras else None
    kind = plan.target_seen.spec.kind if plan is not None else category(seq)
    return FitSequence(seq.name, seq.text, seq.boxes_xywh, seq.absent, seq.load_frame, kind,
                       plan)


def read_names(path: str | pathlib.Path) -> list[str]:
    """Sequence names from a split file, one per line (LaSOT's ``training_set.txt``)."""
    try:
        names = [ln.strip() for ln in pathlib.Path(path).read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise InputError(f'sequence list {path}: unreadable ({exc.strerror})') from None
    if not names:
        raise InputError(f'sequence list {path}: empty; expected one sequence name a line')
    return names


def dataset_sequences(folders, max_sequences: int = 0, extras: bool = True,
                      say: Callable[[str], None] = print, names: list[str] | None = None
                      ) -> tuple[list[FitSequence], dict]:
    """The annotated sequences of dataset ``folders`` (only those in ``names``, when given;
    ``max_sequences`` > 0: that many, spread evenly over the sorted list, so that they cover
    its categories), and a description of the data for the fitted file's metadata. Sequences a
    reader skips are said with ``say``."""
    from nl_tracker_ros.inputs import read_dataset
    from nl_tracker_ros.inputs.datasets import detect_layout

    found, sources = [], []
    for folder in folders:
        seqs, skips = read_dataset(folder)
        for s in skips:
            say(f'skipped {s.path}: {s.reason}')
        found += seqs
        sources.append({'folder': str(folder), 'layout': detect_layout(pathlib.Path(folder)),
                        'sequences': len(seqs)})
    if names is not None:
        wanted = set(names)
        found = [s for s in found if s.name in wanted]
    if not found:
        raise InputError(f'--data {" ".join(map(str, folders))}: no annotated sequence found'
                         + (' among the names listed' if names is not None else ''))
    if 0 < max_sequences < len(found):
        keep = np.unique(np.linspace(0, len(found) - 1, max_sequences).round().astype(int))
        found = [found[i] for i in keep]
    chosen = [from_sequence(s, extras) for s in found]
    data = {'sources': sources, 'sequences': [s.name for s in chosen],
            'with_generator_extras': sum(s.plan is not None for s in chosen)}
    return chosen, data


def generated_sequences(count: int, seed: int, preset: str, width: int, height: int
                        ) -> Iterator[FitSequence]:
    """Scenes ``0 .. count-1`` of ``seed`` rendered in memory, with their plans: the sequences
    ``nl-tracker scenes --count COUNT --seed SEED --preset PRESET --size WxH`` writes."""
    from nl_tracker_ros.scenes import get_mix, plan_scene, render_scene

    mix = get_mix(preset)
    for i in range(count):
        recipe = mix.sample(np.random.default_rng([seed, i, 0]), width, height, None)
        plan = plan_scene(recipe, seed, i)
        frames = list(render_scene(plan))
        boxes = np.array([f.box_xywh if f.box_xywh is not None else (np.nan,) * 4
                          for f in frames], dtype=np.float64)
        absent = np.array([f.box_xywh is None for f in frames])
        yield FitSequence(plan.name, plan.text, boxes, absent,
                          lambda t, frames=frames: frames[t].image,
                          plan.target_seen.spec.kind, plan)


def generated_data(count: int, seed: int, preset: str, width: int, height: int) -> dict:
    """The description of :func:`generated_sequences`' data for a fitted file's metadata."""
    return {'generated': {'count': count, 'seed': seed, 'preset': preset,
                          'size': f'{width}x{height}'}}
