"""The scene generator: determinism, ground truth against the pixels, absent flags, grammar."""
import argparse
import dataclasses
import json

import numpy as np
import pytest

from nl_tracker_ros.config import from_dict
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.inputs import read_dataset
from nl_tracker_ros.scenes import RecipeMix, SceneRecipe, generate, get_mix, plan_scene, \
    render_scene
from nl_tracker_ros.scenes import appearance as app
from nl_tracker_ros.scenes import grammar

SMALL = dict(width=128, height=96)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path):
    a = generate(tmp_path / 'a', 2, seed=7, preset='train', frames=24, **SMALL)
    generate(tmp_path / 'b', 2, seed=7, preset='train', frames=24, workers=2, **SMALL)
    generate(tmp_path / 'c', 2, seed=8, preset='train', frames=24, **SMALL)
    fa, fb, fc = (_files(tmp_path / k) for k in 'abc')
    assert len(a) == 2 and len(fa) == 2 * (24 + 5) + 1
    assert fa == fb
    frames_a = {k: v for k, v in fa.items() if k.endswith('.jpg')}
    frames_c = {k.replace('-s8-', '-s7-'): v for k, v in fc.items() if k.endswith('.jpg')}
    assert frames_a.keys() == frames_c.keys() and frames_a != frames_c


def test_sequence_is_independent_of_count(tmp_path):
    # Sequence i depends on (seed, i) only, so a larger batch starts with the same sequences.
    generate(tmp_path / 'one', 1, seed=3, preset='easy', frames=10, **SMALL)
    generate(tmp_path / 'two', 2, seed=3, preset='easy', frames=10, **SMALL)
    one, two = _files(tmp_path / 'one'), _files(tmp_path / 'two')
    assert all(two[k] == v for k, v in one.items() if not k.endswith('scenes.json'))


def _plain_recipe(**kw):
    base = dict(frames=40, distractors=0, full_occlusions=0, partial_occlusions=0, exits=0,
                background='flat', noise=0.0, camera_pan=0.0, texture_prob=0.0, **SMALL)
    base.update(kw)
    return SceneRecipe(**base)


def _render_over(plan, colour, monkeypatch):
    """Frames of ``plan`` over a flat background of ``colour`` (same random draws otherwise)."""
    from nl_tracker_ros.scenes import generator

    class Flat:
        def __init__(self, plan, rng):
            rng.integers(60, 200, 3)   # what the real flat background draws
            self.shape = (plan.recipe.height, plan.recipe.width, 3)

        def __call__(self, t):
            return np.full(self.shape, colour, np.float32)

    monkeypatch.setattr(generator, '_Background', Flat)
    return list(render_scene(plan))


@pytest.mark.parametrize('sprite_prob', [0.0, 1.0])
def test_box_is_tight_box_of_rendered_target(sprite_prob, monkeypatch):
    # Two renders over different flat backgrounds give each pixel's target coverage (alpha):
    # img = gain * (bg * (1 - alpha) + fg * alpha). The box must be the tight box of alpha >= .5.
    recipe = _plain_recipe(sprite_prob=sprite_prob, exits=1, frames=70, texture_prob=0.5)
    for seed in range(3):
        plan = plan_scene(recipe, seed=seed)
        assert plan.layers[plan.target].spec.is_sprite == (sprite_prob == 1.0)
        dark = _render_over(plan, 20.0, monkeypatch)
        light = _render_over(plan, 230.0, monkeypatch)
        checked, largest, hidden = 0, 0, []
        for ft, a, b in zip(dark, light, dark):
            assert ft.box_xywh == b.box_xywh == a.box_xywh
            gain = b.image[0, 0, 0] / 20.0
            diff = (a.image.astype(np.float64) - b.image).mean(axis=2)
            alpha = 1 - diff / (gain * 210.0)
            sure = np.argwhere(alpha > 0.53)     # rounding to uint8 blurs alpha by < 0.01
            maybe = np.argwhere(alpha > 0.47)
            largest = max(largest, len(maybe))
            if ft.absent:
                hidden.append(len(sure))
                continue
            x, y, w, h = ft.box_xywh
            assert sure[:, 1].min() >= x and sure[:, 1].max() <= x + w - 1
            assert sure[:, 0].min() >= y and sure[:, 0].max() <= y + h - 1
            assert maybe[:, 1].min() <= x and maybe[:, 1].max() >= x + w - 1
            assert maybe[:, 0].min() <= y and maybe[:, 0].max() >= y + h - 1
            checked += 1
        assert checked > 20 and hidden
        # Absent: under min_visible of the target's area (which is at most its largest area).
        assert max(hidden) < recipe.min_visible * largest


def _target_geometry(plan, t):
    """Target mask bbox in frame coordinates (unclipped) at frame ``t``."""
    lay = plan.layers[plan.target]
    c = lay.centre[t]
    _, alpha, x0, y0 = app.render(lay.spec, float(lay.size[t]), float(lay.angle[t]),
                                  (float(c[0]), float(c[1])))
    ys, xs = np.nonzero(alpha >= 0.5)
    return x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1


def test_absent_exactly_where_hidden_or_out_of_view():
    recipe = _plain_recipe(frames=150, exits=1, full_occlusions=1, partial_occlusions=1,
                           sprite_prob=0.5)
    for seed in range(3):
        plan = plan_scene(recipe, seed=seed)
        kinds = sorted(e.kind for e in plan.events)
        assert kinds == ['exit', 'full_occlusion', 'partial_occlusion']
        truths = list(render_scene(plan))
        occluders = [lay for lay in plan.layers if lay.role == 'occluder']
        w, h = recipe.width, recipe.height
        for t, ft in enumerate(truths):
            assert ft.absent == (ft.visible < recipe.min_visible)
            assert ft.absent == (ft.full_occlusion or ft.out_of_view)
            assert not (ft.full_occlusion and ft.out_of_view)
            assert (ft.box_xywh is None) == ft.absent
            x0, y0, x1, y1 = _target_geometry(plan, t)
            inside = x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h
            outside = x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h
            boards = []
            for lay in occluders:
                c = lay.centre[t]
                if np.all(np.isfinite(c)):
                    bh, bw = lay.board.shape[:2]
                    bx, by = int(round(c[0] - bw / 2)), int(round(c[1] - bh / 2))
                    boards.append((bx, by, bx + bw, by + bh))
            covered = any(bx <= x0 and by <= y0 and x1 <= bx2 and y1 <= by2
                          for bx, by, bx2, by2 in boards)
            clear = all(bx2 <= x0 or by2 <= y0 or bx >= x1 or by >= y1
                        for bx, by, bx2, by2 in boards)
            if outside:
                assert ft.absent and ft.out_of_view, (seed, t)
            elif covered:
                assert ft.absent and ft.full_occlusion, (seed, t)
            elif inside and clear:
                assert not ft.absent and ft.visible == 1.0, (seed, t)
        for ev in plan.events:
            span = truths[ev.hold:ev.release + 1]
            if ev.kind == 'exit':
                assert all(f.out_of_view for f in span)
            elif ev.kind == 'full_occlusion':
                assert all(f.full_occlusion for f in span)
            else:
                assert not any(f.absent for f in span)
                assert min(f.visible for f in span) < 0.95
        assert not truths[0].absent and truths[0].visible > 0.95


def _fits(d, target, other, size):
    """Independent reading of the grammar: does ``other`` also fit description ``d``?"""
    if other.spec.kind != d.noun:
        return False
    if d.colour and other.spec.colour != d.colour:
        return False
    if d.texture and other.spec.texture != d.texture:
        return False
    w, h = size
    if d.size == 'small' and target.area * grammar.SIZE_RATIO <= other.area:
        return False
    if d.size == 'big' and target.area >= grammar.SIZE_RATIO * other.area:
        return False
    mx, my = grammar.POSITION_MARGIN * w, grammar.POSITION_MARGIN * h
    away = {'left': target.cx + mx <= other.cx, 'right': target.cx >= other.cx + mx,
            'top': target.cy + my <= other.cy, 'bottom': target.cy >= other.cy + my}
    if d.position and away[d.position]:
        return False
    return True


def test_description_singles_out_target_in_first_frame():
    recipe = SceneRecipe(frames=20, distractors=6, share_colour_prob=0.45, share_kind_prob=0.45,
                         full_occlusions=0, partial_occlusions=0, exits=0, **SMALL)
    relational = sharing = 0
    for seed in range(12):
        plan = plan_scene(recipe, seed=seed)
        d, t = plan.description, plan.target_seen
        assert d.noun == t.spec.kind and d.noun in plan.text
        if d.colour:
            assert d.colour == t.spec.colour and d.colour in plan.text
        if d.texture:
            assert d.texture == t.spec.texture and d.texture in plan.text
        assert not any(_fits(d, t, o, (recipe.width, recipe.height)) for o in plan.seen)
        relational += bool(d.size or d.position)
        # Distractors that share the target's colour or kind are really generated.
        sharing += sum(o.spec.kind == t.spec.kind
                       or bool(o.spec.colour and o.spec.colour == t.spec.colour)
                       for o in plan.seen)
    assert relational >= 1 and sharing >= 12


def test_grammar_needs_relation_for_twins():
    spec = app.ObjectSpec('circle', 'red', 'plain', (220, 30, 30))
    target = grammar.Seen(spec, 10, 50, 100)
    twin = grammar.Seen(spec, 90, 50, 100)
    rng = np.random.default_rng(0)
    d = grammar.choose(target, [twin], (100, 100), rng)
    assert d is not None and d.position == 'left'
    assert grammar.choose(target, [grammar.Seen(spec, 12, 52, 100)], (100, 100), rng) is None
    big = grammar.choose(grammar.Seen(spec, 50, 50, 400), [grammar.Seen(spec, 52, 52, 100)],
                         (100, 100), rng)
    assert big is not None and big.size == 'big'


def test_written_layout_reads_back(tmp_path):
    seqs = generate(tmp_path, 2, seed=1, preset='heldout', frames=150, **SMALL)
    read, skipped = read_dataset(tmp_path)
    assert not skipped and [s.name for s in read] == [s.name for s in seqs]
    for s, r in zip(seqs, read):
        assert r.dataset == 'scenes' and r.text == s.text and len(r) == len(s) == 150
        np.testing.assert_array_equal(r.absent, s.absent)
        np.testing.assert_array_equal(r.boxes_xywh, s.boxes_xywh)
        assert s.absent.any() and not s.absent.all()
        meta = json.loads((tmp_path / s.name / 'meta.json').read_text())
        assert meta['seed'] == 1 and meta['text'] == s.text
        assert meta['recipe']['width'] == SMALL['width']
        assert r.load_frame(0).shape == (SMALL['height'], SMALL['width'], 3)


def test_recipe_config_and_presets():
    mix = from_dict(RecipeMix, {'distractors': [2, 2], 'base': {'noise': 0.0}})
    r = mix.sample(np.random.default_rng(0), 200, 100, 33)
    assert (r.distractors, r.noise, r.width, r.height, r.frames) == (2, 0.0, 200, 100, 33)
    with pytest.raises(ConfigError, match='bogus'):
        from_dict(RecipeMix, {'bogus': 1})
    with pytest.raises(ConfigError, match='train'):
        get_mix('nope')
    with pytest.raises(ConfigError):
        dataclasses.replace(SceneRecipe(), frames=1)


def test_scenes_command_writes_sequences_and_bags(tmp_path, capsys):
    from nl_tracker_ros.inputs.bags import read_bag
    from nl_tracker_ros.commands import scenes
    parser = argparse.ArgumentParser()
    scenes.add_arguments(parser)
    args = parser.parse_args(['--out', str(tmp_path), '--count', '1', '--seed', '4',
                              '--frames', '12', '--size', '96x64', '--bags', 'mcap', '--quiet'])
    assert scenes.run(args) == 0
    assert 'wrote 1 sequences, 12 frames' in capsys.readouterr().out
    (seq,), _ = read_dataset(tmp_path)
    frames = list(read_bag(tmp_path / 'bags' / seq.name))
    assert len(frames) == 12 and frames[0].command == seq.text
    assert frames[0].image.shape == (64, 96, 3)
    with pytest.raises(SystemExit):
        parser.parse_args(['--out', 'x', '--size', '10x10'])
