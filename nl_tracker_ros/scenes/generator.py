"""Plan, render and write language-tracking scenes with exact ground truth.

``plan_scene`` decides everything (objects, paths, occluders, events, description) from a recipe
and a seed; ``render_scene`` draws the frames and measures the target's visible pixels in each,
which is where the ground truth comes from: the box is the tight box of the visible target
pixels (alpha >= 0.5, not covered by a layer above), and the target is absent where fewer than
``recipe.min_visible`` of its pixels are visible (out of view if it is mostly outside the frame,
fully occluded otherwise). Boxes are 0-based pixel (x, y, w, h).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import cv2
import numpy as np

from nl_tracker_ros.colours import COLOURS
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.scenes import appearance as app
from nl_tracker_ros.scenes import grammar, motion
from nl_tracker_ros.scenes.recipe import SceneRecipe

GENERATOR_VERSION = 1
MAX_ATTEMPTS = 30
LEAD_FRAMES = 8     # the target is clear of every event for at least this many first frames
EVENT_GAP = 8       # frames between two events
MIN_HOLD = 4        # shortest hidden/covered span when events are shortened to fit


@dataclasses.dataclass(frozen=True)
class Event:
    """A planned difficulty: the approach starts at ``start``, the target is hidden or covered
    from ``hold`` to ``release`` (inclusive), and the event is over at ``end``."""

    kind: str   # 'exit', 'full_occlusion' or 'partial_occlusion'
    start: int
    hold: int
    release: int
    end: int


@dataclasses.dataclass(frozen=True, eq=False)
class Layer:
    """One drawn thing with its per-frame centre (n, 2; NaN where absent), size and angle."""

    role: str                     # 'target', 'distractor' or 'occluder'
    spec: app.ObjectSpec | None   # None for occluders
    centre: np.ndarray
    size: np.ndarray
    angle: np.ndarray
    board: np.ndarray | None = None  # occluders: (h, w, 3) float32 texture


@dataclasses.dataclass(frozen=True, eq=False)
class ScenePlan:
    """Everything needed to render a scene; ``layers`` are in drawing order."""

    name: str
    seed: int
    index: int
    recipe: SceneRecipe
    text: str
    description: grammar.Description
    layers: tuple[Layer, ...]
    target: int                   # index of the target in ``layers``
    events: tuple[Event, ...]
    background: str               # photograph name, or 'flat'
    seen: tuple[grammar.Seen, ...]  # every non-target object visible in frame 1
    target_seen: grammar.Seen       # the target in frame 1


@dataclasses.dataclass(frozen=True, eq=False)
class FrameTruth:
    """A rendered frame (RGB uint8) and the target's ground truth in it."""

    image: np.ndarray
    box_xywh: tuple[int, int, int, int] | None   # None where absent
    absent: bool
    full_occlusion: bool
    out_of_view: bool
    visible: float                # visible fraction of the target's pixels


def plan_scene(recipe: SceneRecipe, seed: int, index: int = 0,
               name: str | None = None) -> ScenePlan:
    """Plan sequence ``index`` of ``seed``; the same arguments always give the same plan."""
    rng = np.random.default_rng([seed, index, 1])
    name = name or f'scene-s{seed}-{index:04d}'
    for attempt in range(MAX_ATTEMPTS):
        # Later attempts drop distractors: a crowded scene may admit no unambiguous description.
        keep = recipe.distractors - attempt // 6
        plan = _try_plan(recipe, rng, max(0, keep), seed, index, name)
        if plan is not None:
            return plan
    raise ConfigError(f'scene {name}: no valid plan in {MAX_ATTEMPTS} attempts; expected a '
                      f'recipe whose objects fit a {recipe.width}x{recipe.height} frame')


def _random_spec(rng, recipe, sprites, kind=None, colour=None):
    if kind is None:
        use_sprite = bool(sprites) and rng.random() < recipe.sprite_prob
        kind = str(rng.choice(sprites)) if use_sprite else str(rng.choice(app.SHAPES))
    if kind in app.SPRITES:
        return app.ObjectSpec(kind, flip=bool(rng.random() < 0.5))
    colour = colour or str(rng.choice(list(COLOURS)))
    rgb = np.clip(np.array(COLOURS[colour]) + rng.integers(-12, 13, 3), 0, 255)
    texture = 'plain'
    if rng.random() < recipe.texture_prob:
        texture = str(rng.choice(app.TEXTURES[1:]))
    return app.ObjectSpec(kind, colour, texture, tuple(int(v) for v in rgb))


def _distractor_spec(rng, recipe, sprites, target):
    u = rng.random()
    if u < recipe.share_colour_prob and not target.is_sprite:
        kinds = [k for k in app.SHAPES if k != target.kind]
        return _random_spec(rng, recipe, sprites, kind=str(rng.choice(kinds)),
                            colour=target.colour)
    if u < recipe.share_colour_prob + recipe.share_kind_prob:
        if target.is_sprite:
            return _random_spec(rng, recipe, sprites, kind=target.kind)
        # Same shape; a third of these also share the colour (only size/position can tell).
        colour = target.colour if rng.random() < 0.33 else None
        return _random_spec(rng, recipe, sprites, kind=target.kind, colour=colour)
    return _random_spec(rng, recipe, sprites)


def _schedule(rng, recipe) -> list[Event]:
    n = recipe.frames
    kinds = (['exit'] * recipe.exits + ['full_occlusion'] * recipe.full_occlusions
             + ['partial_occlusion'] * recipe.partial_occlusions)
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    spans = []
    for k in kinds:
        if k == 'exit':
            spans.append((int(rng.integers(8, 15)), int(rng.integers(10, 31)),
                          int(rng.integers(8, 15))))
        else:
            hold = int(rng.integers(5, 26)) if k == 'full_occlusion' else int(rng.integers(8, 21))
            spans.append((int(rng.integers(6, 13)), hold, int(rng.integers(6, 13))))
    lead = max(LEAD_FRAMES, n // 10)
    avail = n - lead - 6
    while kinds:
        room = avail - EVENT_GAP * (len(kinds) - 1) - sum(a + b for a, _, b in spans)
        holds = sum(d for _, d, _ in spans)
        if room >= holds:
            break
        if room >= MIN_HOLD * len(kinds):
            # Shorten the hidden spans to fit every planned event, rather than drop one.
            k = room / holds
            spans = [(a, max(MIN_HOLD, int(d * k)), b) for a, d, b in spans]
            continue
        kinds.pop()
        spans.pop()
    if not kinds:
        return []
    slack = avail - sum(map(sum, spans)) - EVENT_GAP * (len(kinds) - 1)
    cuts = np.sort(rng.integers(0, slack + 1, size=len(kinds)))
    events, t = [], lead
    for i, (k, (a, d, b)) in enumerate(zip(kinds, spans)):
        start = t + int(cuts[i]) - (int(cuts[i - 1]) if i else 0)
        events.append(Event(k, start, start + a, start + a + d - 1, start + a + d - 1 + b))
        t = events[-1].end + 1 + EVENT_GAP
    return events


def _extent(spec: app.ObjectSpec, size: float) -> float:
    """Largest extent of the drawn object (shapes may be rotated)."""
    return size if spec.is_sprite else size * math.sqrt(2)


def _try_plan(recipe, rng, n_distractors, seed, index, name):
    n, width, height = recipe.frames, recipe.width, recipe.height
    dim, diag = min(width, height), math.hypot(width, height)
    if recipe.background == 'flat':
        bg = 'flat'
    else:
        bg = str(rng.choice(list(app.BACKGROUNDS)))
    sprites = [s for s in app.SPRITES if s not in app.BACKGROUNDS.get(bg, ())]
    target = _random_spec(rng, recipe, sprites)
    specs = [target] + [_distractor_spec(rng, recipe, sprites, target)
                        for _ in range(n_distractors)]
    base = rng.uniform(recipe.min_size, recipe.max_size, len(specs)) * dim
    scales = [motion.scale_curve(rng, n, recipe.scale_change) for _ in specs]
    sizes = [b * s for b, s in zip(base, scales)]
    angles = []
    for spec in specs:
        spin = 0.0 if spec.is_sprite or rng.random() >= recipe.rotate_prob \
            else rng.uniform(-2.5, 2.5)
        angles.append(rng.uniform(0, 360) * (spin != 0) + spin * np.arange(n))
    speed = recipe.speed * diag
    events = _schedule(rng, recipe)

    # Target path: a wander kept in view, with keyframes replaced around each exit.
    ext0 = _extent(target, float(sizes[0].max()))
    m = 0.5 * ext0 + 2
    bounds = (m, width - m, m, height - m)
    start = (rng.uniform(bounds[0], bounds[1]), rng.uniform(bounds[2], bounds[3]))
    keys = motion.wander(rng, n, start, bounds, speed * rng.uniform(0.6, 1.4))
    out = 0.5 * ext0 + 4
    for ev in (e for e in events if e.kind == 'exit'):
        keys = [k for k in keys if not ev.start - 6 <= k[0] <= ev.end + 6 or k[0] == 0]
        edge = int(rng.integers(4))
        keys += [(float(t), *_edge_point(rng, edge, bounds, width, height, o)) for t, o in
                 ((ev.start, -1), (ev.hold, out), (ev.release, out), (ev.end, -1))]
        keys.sort()
    arr = np.array(keys)
    centres = [motion.smooth_path(arr[:, 0], arr[:, 1:], n)]

    # Distractors wander anywhere in view; they start clear of the target.
    for i in range(1, len(specs)):
        e = _extent(specs[i], float(sizes[i].max()))
        mb = 0.5 * e
        b = (mb, width - mb, mb, height - mb)
        p = None
        for _ in range(30):
            q = (rng.uniform(b[0], b[1]), rng.uniform(b[2], b[3]))
            if math.hypot(q[0] - start[0], q[1] - start[1]) > 0.55 * (
                    _extent(specs[i], sizes[i][0]) + _extent(target, sizes[0][0])) + 4:
                p = q
                break
        if p is None:
            return None
        keys = np.array(motion.wander(rng, n, p, b, speed * rng.uniform(0.5, 1.5)))
        centres.append(motion.smooth_path(keys[:, 0], keys[:, 1:], n))

    layers = [Layer('target' if i == 0 else 'distractor', s, c, z, a)
              for i, (s, c, z, a) in enumerate(zip(specs, centres, sizes, angles))]
    # Some distractors pass in front of the target.
    above = [lay for lay in layers[1:] if rng.random() < 0.3]
    below = [lay for lay in layers[1:] if lay not in above]
    ordered = below + [layers[0]] + above
    occluders = [_occluder(rng, ev, layers[0], width, height)
                 for ev in events if ev.kind != 'exit']
    ordered += occluders
    tgt = len(below)

    # Frame 1: the target fully visible, and a description that singles it out.
    truth = _target_truth(ordered, tgt, 0, width, height, recipe.min_visible)
    if truth.visible < 0.95:
        return None
    seen = []
    t_seen = None
    for i, lay in enumerate(ordered):
        if lay.role == 'occluder':
            continue
        info = _own_pixels(lay, 0, width, height)
        if info is None:
            continue
        s = grammar.Seen(lay.spec, *info)
        if i == tgt:
            t_seen = s
        else:
            seen.append(s)
    desc = grammar.choose(t_seen, seen, (width, height), rng)
    if desc is None:
        return None
    text = grammar.phrase(desc, rng)
    return ScenePlan(name, seed, index, recipe, text, desc, tuple(ordered), tgt, tuple(events),
                     bg, tuple(seen), t_seen)


def _edge_point(rng, edge, bounds, width, height, out):
    """A centre near ``edge`` (0 left, 1 right, 2 top, 3 bottom): inside if ``out`` < 0, else
    ``out`` px beyond the frame border."""
    xmin, xmax, ymin, ymax = bounds
    fx = rng.uniform(0.1, 0.9)
    along_x = xmin + fx * (xmax - xmin)
    along_y = ymin + fx * (ymax - ymin)
    inset = rng.uniform(0.0, 0.2)
    if edge == 0:
        return (-out if out > 0 else xmin + inset * (xmax - xmin)), along_y
    if edge == 1:
        return (width + out if out > 0 else xmax - inset * (xmax - xmin)), along_y
    if edge == 2:
        return along_x, (-out if out > 0 else ymin + inset * (ymax - ymin))
    return along_x, (height + out if out > 0 else ymax - inset * (ymax - ymin))


def _occluder(rng, ev: Event, target: Layer, width, height) -> Layer:
    """A textured board that slides in, covers the target from ev.hold to ev.release, leaves."""
    n = len(target.size)
    axis = int(rng.integers(2))          # 0: travels along x, 1: along y
    sign = 1.0 if rng.random() < 0.5 else -1.0
    # The target's drawn extent along and across the travel, over the covered span.
    reach = np.zeros(2)
    for t in range(ev.hold, ev.release + 1):
        _, alpha, x0, y0 = _patch(target, t)
        ys, xs = np.nonzero(alpha >= 0.5)
        c = target.centre[t]
        reach = np.maximum(reach, [max(c[0] - x0 - xs.min(), x0 + xs.max() + 1 - c[0]),
                                   max(c[1] - y0 - ys.min(), y0 + ys.max() + 1 - c[1])])
    ext, ext_across = 2 * reach[axis] + 2, 2 * reach[1 - axis] + 2
    if ev.kind == 'full_occlusion':
        along = ext * rng.uniform(1.15, 1.5) + 6
        across = ext_across * rng.uniform(1.15, 2.2) + 6
        r_hold = 0.0
    else:
        along = ext * rng.uniform(0.8, 1.2) + 4
        across = ext_across * rng.uniform(1.2, 2.0) + 6
        r_hold = along / 2 + ext / 2 - rng.uniform(0.3, 0.65) * ext
    frame_len = width if axis == 0 else height
    c0 = target.centre[ev.start, axis]
    c3 = target.centre[ev.end, axis]
    # Start beyond the frame on the +sign side, leave beyond it on the other side.
    r_in = ((frame_len - c0) if sign > 0 else c0) + along / 2 + 2
    if ev.kind == 'full_occlusion':   # passes on over the target and out the other side
        r_end = -((c3 if sign > 0 else (frame_len - c3)) + along / 2 + 2)
    else:                             # backs off the way it came, never covering it all
        r_end = ((frame_len - c3) if sign > 0 else c3) + along / 2 + 2
    r = motion.occluder_offsets(n, ev.start, ev.hold, ev.release, ev.end, r_in, r_hold, r_end)
    centre = target.centre.copy()
    centre[:, axis] += sign * r
    centre[np.isnan(r)] = np.nan
    w, h = (along, across) if axis == 0 else (across, along)
    w, h = int(round(w)), int(round(h))
    tex = str(rng.choice(app.OCCLUDER_TEXTURES))
    board = app.occluder_patch(tex, w, h, (int(rng.integers(1000)), int(rng.integers(1000))))
    tint = rng.uniform(0.6, 1.2, 3).astype(np.float32)
    board = np.clip(board * tint, 0, 255).astype(np.float32)
    return Layer('occluder', None, centre, np.full(n, float(max(w, h))), np.zeros(n), board)


def _patch(layer: Layer, t: int):
    """(rgb, alpha, x0, y0) of ``layer`` at frame ``t``, or None where it does not exist."""
    c = layer.centre[t]
    if not np.all(np.isfinite(c)):
        return None
    if layer.board is not None:
        h, w = layer.board.shape[:2]
        x0, y0 = int(round(c[0] - w / 2)), int(round(c[1] - h / 2))
        return layer.board, np.ones((h, w), np.float32), x0, y0
    return app.render(layer.spec, float(layer.size[t]), float(layer.angle[t]),
                      (float(c[0]), float(c[1])))


def _clip(x0, y0, w, h, width, height):
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, width), min(y0 + h, height)
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    return fx0, fy0, fx1, fy1


def _own_pixels(layer, t, width, height):
    """(cx, cy, area) of the layer's in-frame pixels at ``t`` (ignoring other layers)."""
    p = _patch(layer, t)
    if p is None:
        return None
    _, alpha, x0, y0 = p
    r = _clip(x0, y0, alpha.shape[1], alpha.shape[0], width, height)
    if r is None:
        return None
    fx0, fy0, fx1, fy1 = r
    ys, xs = np.nonzero(alpha[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] >= 0.5)
    if len(xs) == 0:
        return None
    return float(fx0 + xs.mean()), float(fy0 + ys.mean()), float(len(xs))


class _TargetStats:
    """Accumulates the target mask and what covers it while layers are drawn."""

    def __init__(self, alpha, x0, y0, width, height):
        self.full = int(np.count_nonzero(alpha >= 0.5))
        self.rect = _clip(x0, y0, alpha.shape[1], alpha.shape[0], width, height)
        self.mask = None
        if self.rect is not None:
            fx0, fy0, fx1, fy1 = self.rect
            self.mask = alpha[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] >= 0.5
            self.cover = np.zeros(self.mask.shape, bool)

    def covered_by(self, alpha, x0, y0):
        if self.mask is None:
            return
        fx0, fy0, fx1, fy1 = self.rect
        ax0, ay0 = max(fx0, x0), max(fy0, y0)
        ax1, ay1 = min(fx1, x0 + alpha.shape[1]), min(fy1, y0 + alpha.shape[0])
        if ax1 <= ax0 or ay1 <= ay0:
            return
        self.cover[ay0 - fy0:ay1 - fy0, ax0 - fx0:ax1 - fx0] |= \
            alpha[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] >= 0.5

    def truth(self, image, min_visible) -> FrameTruth:
        full = max(self.full, 1)
        if self.mask is None:
            return FrameTruth(image, None, True, False, True, 0.0)
        visible = self.mask & ~self.cover
        n_vis = int(np.count_nonzero(visible))
        frac = n_vis / full
        if frac < min_visible:
            oov = np.count_nonzero(self.mask) / full < min_visible
            return FrameTruth(image, None, True, not oov, oov, frac)
        ys, xs = np.nonzero(visible)
        fx0, fy0 = self.rect[:2]
        box = (fx0 + int(xs.min()), fy0 + int(ys.min()),
               int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1)
        return FrameTruth(image, box, False, False, False, frac)


def distractor_boxes(plan: ScenePlan, t: int) -> list[tuple[int, int, int, int]]:
    """Boxes (xywh px) of the distractors in frame ``t``, ignoring what is drawn over them.

    The look-alikes the target must be told apart from (hard negatives for the retrieval
    switch); distractors outside the frame are left out.
    """
    return [box for _, box, _ in distractors(plan, t)]


def distractors(plan: ScenePlan, t: int
                ) -> list[tuple[app.ObjectSpec, tuple[int, int, int, int], float]]:
    """``distractor_boxes`` with each distractor's appearance and the share of its pixels
    that nothing drawn over it hides (0..1)."""
    r = plan.recipe
    out = []
    for i, lay in enumerate(plan.layers):
        if lay.role != 'distractor' or (p := _patch(lay, t)) is None:
            continue
        _, alpha, x0, y0 = p
        ys, xs = np.nonzero(alpha >= 0.5)
        if len(xs) == 0:
            continue
        box = _clip(x0 + int(xs.min()), y0 + int(ys.min()), int(xs.max() - xs.min()) + 1,
                    int(ys.max() - ys.min()) + 1, r.width, r.height)
        if box is not None:
            fx0, fy0, fx1, fy1 = box
            seen = _target_truth(plan.layers, i, t, r.width, r.height, 1e-9).visible
            out.append((lay.spec, (fx0, fy0, fx1 - fx0, fy1 - fy0), seen))
    return out


def _target_truth(layers, tgt, t, width, height, min_visible):
    """Ground truth of the target at frame ``t`` from the masks alone (no drawing)."""
    stats = None
    for i, lay in enumerate(layers):
        if i < tgt:
            continue
        p = _patch(lay, t)
        if p is None:
            if i == tgt:
                return FrameTruth(None, None, True, False, True, 0.0)
            continue
        _, alpha, x0, y0 = p
        if i == tgt:
            stats = _TargetStats(alpha, x0, y0, width, height)
        else:
            stats.covered_by(alpha, x0, y0)
    return stats.truth(None, min_visible)


class _Background:
    """Per-frame background: a photograph panned and zoomed slowly, or a flat colour."""

    def __init__(self, plan: ScenePlan, rng: np.random.Generator):
        r = plan.recipe
        self.size = (r.width, r.height)
        self.n = r.frames
        if plan.background == 'flat':
            self.flat = np.float32(rng.integers(60, 200, 3))
            return
        self.flat = None
        tint = tuple(rng.uniform(0.6, 1.2, 3))
        src = app.background_source(plan.background, tint)
        if rng.random() < 0.5:
            src = src[:, ::-1]
        self.src = np.ascontiguousarray(src)
        sh, sw = src.shape[:2]
        pan = r.camera_pan
        # Scale so the source covers the frame plus the pan and zoom travel.
        self.k0 = max(r.width * (1 + pan) / sw, r.height * (1 + pan) / sh) * rng.uniform(1, 1.4)
        self.zoom = rng.uniform(-0.1, 0.1)
        span_x = sw * self.k0 * (1 - abs(self.zoom)) - r.width
        span_y = sh * self.k0 * (1 - abs(self.zoom)) - r.height
        self.o0 = np.array([rng.uniform(0, max(span_x, 0)), rng.uniform(0, max(span_y, 0))])
        travel = np.array([r.width, r.height]) * pan * rng.uniform(-1, 1, 2)
        self.o1 = np.clip(self.o0 + travel, 0, [max(span_x, 0), max(span_y, 0)])

    def __call__(self, t: int) -> np.ndarray:
        width, height = self.size
        if self.flat is not None:
            return np.broadcast_to(self.flat, (height, width, 3)).copy()
        a = t / max(1, self.n - 1)
        k = self.k0 * (1 + self.zoom * a)
        o = self.o0 + (self.o1 - self.o0) * a
        m = np.float32([[k, 0, -o[0]], [0, k, -o[1]]])
        return cv2.warpAffine(self.src, m, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)


def render_scene(plan: ScenePlan) -> Iterator[FrameTruth]:
    """Draw the frames of ``plan`` one by one with the target's ground truth."""
    r = plan.recipe
    width, height = r.width, r.height
    rng = np.random.default_rng([plan.seed, plan.index, 2])
    background = _Background(plan, rng)
    noise = [rng.normal(0, r.noise, (height, width, 3)).astype(np.float32)
             for _ in range(4)] if r.noise > 0 else None
    gain_amp, gain_period = rng.uniform(0, 0.06), rng.uniform(40, 120)
    for t in range(r.frames):
        frame = background(t)
        stats = None
        for i, lay in enumerate(plan.layers):
            p = _patch(lay, t)
            if p is None:
                continue
            rgb, alpha, x0, y0 = p
            _paste(frame, rgb, alpha, x0, y0)
            if i == plan.target:
                stats = _TargetStats(alpha, x0, y0, width, height)
            elif stats is not None:
                stats.covered_by(alpha, x0, y0)
        frame *= np.float32(1 + gain_amp * math.sin(2 * math.pi * t / gain_period))
        if noise is not None:
            frame += noise[t % len(noise)]
        image = np.clip(frame, 0, 255).astype(np.uint8)
        if stats is None:
            yield FrameTruth(image, None, True, False, True, 0.0)
        else:
            yield stats.truth(image, r.min_visible)


def _paste(frame, rgb, alpha, x0, y0):
    height, width = frame.shape[:2]
    r = _clip(x0, y0, alpha.shape[1], alpha.shape[0], width, height)
    if r is None:
        return
    fx0, fy0, fx1, fy1 = r
    a = alpha[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0, None]
    src = rgb[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    roi = frame[fy0:fy1, fx0:fx1]
    roi += (src - roi) * a
