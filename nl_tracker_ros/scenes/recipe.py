"""Scene recipes: what one generated sequence contains, and difficulty mixes that sample them.

A ``SceneRecipe`` is concrete (this many distractors, occlusions, exits, frames); a ``RecipeMix``
holds ranges and draws one recipe per sequence. Presets are data: ``PRESETS[name]``. Both are
frozen dataclasses, so YAML can override any field through ``nl_tracker_ros.config.from_dict``.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from nl_tracker_ros.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SceneRecipe:
    """Everything that decides one sequence, apart from its seed."""

    frames: int = 150
    width: int = 640
    height: int = 480
    distractors: int = 3
    full_occlusions: int = 1       # an occluder passes over and hides the whole target
    partial_occlusions: int = 1    # an occluder covers part of the target
    exits: int = 1                 # the target leaves the view and comes back
    sprite_prob: float = 0.3       # chance that an object is a photo sprite, not a shape
    share_colour_prob: float = 0.35  # chance that a distractor has the target's colour
    share_kind_prob: float = 0.35    # ... the target's shape (or sprite)
    texture_prob: float = 0.3      # chance that a shape is striped/dotted/checkered
    min_size: float = 0.08         # object extent as a fraction of min(width, height)
    max_size: float = 0.28
    scale_change: float = 1.6      # largest size ratio of one object over the sequence
    speed: float = 0.012           # typical speed, fraction of the frame diagonal per frame
    rotate_prob: float = 0.4       # chance that a shape spins
    background: Literal['photo', 'flat'] = 'photo'
    camera_pan: float = 0.15       # background drift over the sequence, fraction of the frame
    noise: float = 3.0             # std of the sensor noise, grey levels
    min_visible: float = 0.1       # target absent below this visible fraction of its area
    jpeg_quality: int = 90
    fps: float = 30.0              # frame rate of the written bags

    def __post_init__(self):
        if self.frames < 2:
            raise ConfigError(f'recipe.frames: expected >= 2, got {self.frames}')
        if self.width < 64 or self.height < 64:
            raise ConfigError(f'recipe size: expected at least 64x64, '
                              f'got {self.width}x{self.height}')
        for name in ('distractors', 'full_occlusions', 'partial_occlusions', 'exits'):
            if getattr(self, name) < 0:
                raise ConfigError(f'recipe.{name}: expected >= 0, got {getattr(self, name)}')
        if not 0 < self.min_size <= self.max_size < 0.6:
            raise ConfigError(f'recipe sizes: expected 0 < min_size <= max_size < 0.6, '
                              f'got {self.min_size}, {self.max_size}')
        if not 0 <= self.min_visible < 1:
            raise ConfigError(f'recipe.min_visible: expected 0..1, got {self.min_visible}')


@dataclasses.dataclass(frozen=True)
class RecipeMix:
    """Ranges (inclusive) from which each sequence's recipe is drawn; ``base`` fills the rest."""

    frames: tuple[int, int] = (120, 180)
    distractors: tuple[int, int] = (0, 5)
    full_occlusions: tuple[int, int] = (0, 2)
    partial_occlusions: tuple[int, int] = (0, 2)
    exits: tuple[int, int] = (0, 1)
    base: SceneRecipe = SceneRecipe()

    def sample(self, rng: np.random.Generator, width: int | None = None,
               height: int | None = None, frames: int | None = None) -> SceneRecipe:
        """Draw one recipe; explicit ``width``/``height``/``frames`` override the mix."""
        def pick(lo_hi):
            lo, hi = lo_hi
            return int(rng.integers(lo, hi + 1))
        return dataclasses.replace(
            self.base,
            frames=frames if frames is not None else pick(self.frames),
            width=width if width is not None else self.base.width,
            height=height if height is not None else self.base.height,
            distractors=pick(self.distractors),
            full_occlusions=pick(self.full_occlusions),
            partial_occlusions=pick(self.partial_occlusions),
            exits=pick(self.exits))


PRESETS: dict[str, RecipeMix] = {
    # Broad mix for training: some easy sequences, some with every difficulty.
    'train': RecipeMix(),
    # Held-out evaluation: always distractors, occlusions and an exit (different seeds).
    'heldout': RecipeMix(frames=(150, 150), distractors=(2, 5), full_occlusions=(1, 2),
                         partial_occlusions=(0, 1), exits=(1, 1)),
    # Grounding and plumbing checks: nothing hides the target.
    'easy': RecipeMix(frames=(60, 90), distractors=(0, 3), full_occlusions=(0, 0),
                      partial_occlusions=(0, 0), exits=(0, 0),
                      base=SceneRecipe(camera_pan=0.05)),
    # The demo scene: one of each event, clearly separated.
    'demo': RecipeMix(frames=(300, 300), distractors=(3, 3), full_occlusions=(1, 1),
                      partial_occlusions=(1, 1), exits=(1, 1),
                      base=SceneRecipe(speed=0.008)),
}


def get_mix(name: str) -> RecipeMix:
    """The preset mix called ``name``; ConfigError lists the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f'scene preset {name!r}: expected one of {sorted(PRESETS)}') from None
