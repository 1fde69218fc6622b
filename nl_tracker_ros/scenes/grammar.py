"""Descriptions from a small grammar of attributes and spatial relations.

A description names the target's kind (shape or sprite noun) and, when needed, its colour,
texture, relative size ("small", "big") and position among look-alikes ("on the left"). It is
chosen so that no other object visible in the first frame fits it.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from nl_tracker_ros.colours import COLOURS
from nl_tracker_ros.scenes.appearance import SHAPES, SPRITES, ObjectSpec

SIZE_RATIO = 1.8          # "small"/"big" need this area ratio to every look-alike
POSITION_MARGIN = 0.08    # "on the left" needs this gap (fraction of the frame) to look-alikes
TEXTURE_WORDS = {'striped': 'striped', 'dotted': 'dotted', 'checkered': 'checkered'}
POSITION_WORDS = {'left': 'on the left', 'right': 'on the right', 'top': 'at the top',
                  'bottom': 'at the bottom'}
PREFIXES = ('the', 'the', 'the', 'follow the', 'track the', 'watch the')


@dataclasses.dataclass(frozen=True)
class Seen:
    """An object as seen in the first frame: appearance, centre and visible area (pixels)."""

    spec: ObjectSpec
    cx: float
    cy: float
    area: float


@dataclasses.dataclass(frozen=True)
class Description:
    """Attributes used to refer to the target; '' means not used."""

    noun: str
    colour: str = ''
    texture: str = ''
    size: str = ''        # 'small' or 'big'
    position: str = ''    # 'left', 'right', 'top' or 'bottom'


def look_alikes(d: Description, others: Sequence[Seen]) -> list[Seen]:
    """Objects that share every categorical attribute (kind, colour, texture) used in ``d``."""
    return [o for o in others
            if o.spec.kind == d.noun
            and (not d.colour or o.spec.colour == d.colour)
            and (not d.texture or o.spec.texture == d.texture)]


def singles_out(d: Description, target: Seen, others: Sequence[Seen],
                size: tuple[int, int]) -> bool:
    """True if ``d`` fits ``target`` and no object in ``others`` fits it too."""
    s = target.spec
    if d.noun != s.kind or (d.colour and d.colour != s.colour) or \
            (d.texture and d.texture != s.texture):
        return False
    group = look_alikes(d, others)
    if not group:
        return True
    width, height = size
    if d.size == 'small' and not all(target.area * SIZE_RATIO <= o.area for o in group):
        return False
    if d.size == 'big' and not all(target.area >= SIZE_RATIO * o.area for o in group):
        return False
    mx, my = POSITION_MARGIN * width, POSITION_MARGIN * height
    checks = {'left': lambda o: target.cx + mx <= o.cx, 'right': lambda o: target.cx >= o.cx + mx,
              'top': lambda o: target.cy + my <= o.cy, 'bottom': lambda o: target.cy >= o.cy + my}
    if d.position and not all(checks[d.position](o) for o in group):
        return False
    return bool(d.size or d.position)


def choose(target: Seen, others: Sequence[Seen], size: tuple[int, int],
           rng: np.random.Generator) -> Description | None:
    """A short description that singles out ``target``, or None if none exists."""
    s = target.spec
    cats = [Description(s.kind)]
    if not s.is_sprite:
        texture = TEXTURE_WORDS.get(s.texture, '')
        with_colour = Description(s.kind, colour=s.colour)
        # Shapes are mostly named with their colour even when the shape alone would do.
        cats = [with_colour, cats[0]] if rng.random() < 0.8 else [cats[0], with_colour]
        if texture:
            cats += [dataclasses.replace(c, texture=s.texture) for c in cats]
    relative = [('', '')]
    relative += [(sz, '') for sz in ('small', 'big')]
    positions = [str(p) for p in rng.permutation(list(POSITION_WORDS))]
    relative += [('', p) for p in positions]
    relative += [(sz, p) for sz in ('small', 'big') for p in positions]
    for rel_size, rel_pos in relative:
        for c in cats:
            d = dataclasses.replace(c, size=rel_size, position=rel_pos)
            if singles_out(d, target, others, size):
                return d
    return None


def contradict(d: Description, target: ObjectSpec, rng: np.random.Generator) -> Description:
    """A description that ``target`` does not fit by its looks: another colour or kind.

    Size and position words are dropped, so the mismatch is in the appearance alone (what a
    region's features can show). Used as a hard negative for the retrieval switch.
    """
    if target.is_sprite:
        return Description(str(rng.choice([n for n in SPRITES if n != target.kind])))
    if rng.random() < 0.5:
        colour = str(rng.choice([c for c in COLOURS if c != target.colour]))
        return Description(d.noun, colour=colour, texture=d.texture)
    kind = str(rng.choice([k for k in SHAPES if k != target.kind]))
    return Description(kind, colour=d.colour, texture=d.texture)


def unmatched(objects: Sequence[ObjectSpec], rng: np.random.Generator,
              words: str = 'colour-kind') -> str:
    """A description that fits none of ``objects``: 'the <colour> <kind>' such that no object
    has both (``words='colour-kind'``), or 'the <kind>' such that no object is of that kind
    (``words='kind'``, where no colour word can tell; with every kind taken, the former)."""
    kinds = {o.kind for o in objects}
    free_kinds = [k for k in SHAPES if k not in kinds]
    if words == 'kind' and free_kinds:
        return f'the {free_kinds[int(rng.integers(len(free_kinds)))]}'
    taken = {(o.colour, o.kind) for o in objects}
    free = [(c, k) for c in COLOURS for k in SHAPES if (c, k) not in taken]
    colour, kind = free[int(rng.integers(len(free)))]
    return f'the {colour} {kind}'


def phrase(d: Description, rng: np.random.Generator) -> str:
    """Words for ``d``: "the small striped red circle on the left", "follow the cat"."""
    words = [str(rng.choice(PREFIXES))]
    if d.size:
        words.append(d.size if rng.random() < 0.6 else {'small': 'little', 'big': 'large'}[d.size])
    if d.texture:
        words.append(TEXTURE_WORDS[d.texture])
    if d.colour:
        words.append(d.colour)
    words.append(d.noun)
    if d.position:
        words.append(POSITION_WORDS[d.position])
    return ' '.join(words)
