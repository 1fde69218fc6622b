"""Fitting the switch: samples from generated scenes, a short fit, weights the tracker loads."""
import dataclasses

import numpy as np
import pytest
import torch

from nl_tracker_ros import tracker as trk
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.model.config import get_preset
from nl_tracker_ros.recovery.config import MethodConfig, RecoveryConfig
from nl_tracker_ros.recovery.switch import build_recovery
from nl_tracker_ros.training.recovery_fit import FitConfig, collect, fit_recovery, separation
from nl_tracker_ros.recovery.switch import save_weights
from nl_tracker_ros.scenes import distractor_boxes, get_mix, plan_scene

SMALL = MethodConfig()
SMALL = dataclasses.replace(
    SMALL, switch=dataclasses.replace(SMALL.switch, dim=32, heads=2, gpo_dim=8),
    search=dataclasses.replace(SMALL.search, dim=32, heads=2))


def test_distractor_boxes_sit_on_the_distractors_of_frame_one():
    recipe = get_mix('heldout').sample(np.random.default_rng([3, 0, 0]), 320, 240, 20)
    plan = plan_scene(recipe, 3, 0)
    boxes = distractor_boxes(plan, 0)
    assert len(boxes) >= 1
    centres = np.array([(x + w / 2, y + h / 2) for x, y, w, h in boxes])
    for seen in plan.seen:      # every object seen in frame 1 that is not the target
        if seen.area > 0:
            assert np.hypot(*(centres - (seen.cx, seen.cy)).T).min() < 0.35 * seen.area ** 0.5
    for x, y, w, h in boxes:
        assert x >= 0 and y >= 0 and x + w <= 320 and y + h <= 240 and w > 0 and h > 0


def test_distractors_say_how_much_of_each_is_hidden():
    from nl_tracker_ros.scenes import distractors, render_scene
    seen = []
    for index in range(3):
        recipe = get_mix('heldout').sample(np.random.default_rng([3, index, 0]), 320, 240, 40)
        plan = plan_scene(recipe, 3, index)
        for t, frame in enumerate(render_scene(plan)):
            found = distractors(plan, t)
            assert [box for _, box, _ in found] == distractor_boxes(plan, t)
            kinds = {lay.spec.kind for lay in plan.layers if lay.role == 'distractor'}
            assert all(spec.kind in kinds for spec, _, _ in found)
            seen += [v for _, _, v in found]
    seen = np.array(seen)
    assert ((seen >= 0) & (seen <= 1)).all()
    assert (seen == 1).mean() > 0.5 and (seen < 0.9).any()    # mostly in view, some hidden


@pytest.fixture(scope='module')
def samples():
    tracker = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny',
                                                  random_weights=True), 'cpu')
    cfg = FitConfig(scenes=2, seed=4, preset='heldout', frames_per_scene=6, global_share=0.5)
    return collect(tracker, cfg)


def test_collect_gives_features_and_boxes_in_the_input_frame(samples):
    assert 6 <= len(samples) <= 12
    assert {s.kind for s in samples} == {'local', 'global'}
    for s in samples:
        assert s.features.dim() == 3 and s.features.dtype == torch.float16
        assert s.hard.shape[1:] == (4,) and s.text.shape[0] == s.text_pad.shape[0]
        assert s.wrong_text.shape[1] == s.text.shape[1]
        assert s.wrong_text.shape[0] == s.wrong_pad.shape[0]
        n = min(len(s.text), len(s.wrong_text))   # another description: other tokens
        assert not torch.equal(s.text[:n], s.wrong_text[:n])
        if s.present:
            assert ((s.target[:2] > 0) & (s.target[:2] < 1)).all() and (s.target[2:] > 0).all()
        for h in s.hard:
            assert 0 < h[0] < 1 and 0 < h[1] < 1
    assert any(s.present for s in samples)


def test_wrong_template_scenes_start_on_a_distractor():
    tracker = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny',
                                                  random_weights=True), 'cpu')
    starts, real = [], tracker.set_command

    def spy(text, stamp, box_xywh=None, **kw):
        starts.append((text, box_xywh))
        return real(text, stamp, box_xywh=box_xywh, **kw)

    tracker.set_command = spy
    cfg = FitConfig(scenes=2, seed=4, preset='heldout', frames_per_scene=2,
                    wrong_template_share=1.0)
    samples = collect(tracker, cfg)
    assert len(starts) == 2 and samples
    for i, (text, box) in enumerate(starts):
        plan = plan_scene(get_mix('heldout').sample(np.random.default_rng([4, i, 0]), 320, 240,
                                                    None), 4, i)
        assert text == plan.text      # the description stays the target's: labels follow it
        assert tuple(box) in {tuple(b) for b in distractor_boxes(plan, 0)}
    with pytest.raises(ConfigError, match='wrong_template_share'):
        FitConfig(wrong_template_share=1.5)


def test_unmatched_samples_ground_a_description_that_fits_no_object(monkeypatch):
    from nl_tracker_ros.scenes import grammar
    tracker = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny',
                                                  random_weights=True), 'cpu')
    said, ran = [], []
    real_unmatched = grammar.unmatched

    def spy_unmatched(objects, rng, words):
        said.append((objects, words, real_unmatched(objects, rng, words)))
        return said[-1][2]

    def spy(name):
        real = getattr(tracker, name)

        def step(*args):
            ran.append((name, tracker.text_features.tokens[0].float()))
            return real(*args)
        return step

    monkeypatch.setattr(grammar, 'unmatched', spy_unmatched)
    tracker.global_step, tracker.local_step = spy('global_step'), spy('local_step')
    cfg = FitConfig(scenes=2, seed=4, preset='heldout', frames_per_scene=3, global_share=0.0,
                    unmatched_share=1.0)
    samples = collect(tracker, cfg)
    assert [s.kind for s in samples] == ['local', 'unmatched'] * 6
    assert [w for _, w, _ in said] == ['kind', 'colour-kind']        # half name no colour
    for objects, _, text in said:
        words = text.split()[1:]                 # ['star'] or ['purple', 'star']
        assert not any(o.kind == words[-1] and (len(words) == 1 or o.colour == words[0])
                       for o in objects), text
    # whole-frame steps grounded the unmatched description; local steps kept the command
    assert [name for name, _ in ran] == ['local_step', 'global_step'] * 6
    for (_, tokens), s in zip(ran, samples):
        assert torch.equal(tokens, s.text)
    for plain, extra in zip(samples[::2], samples[1::2]):
        assert not extra.present
        assert not torch.equal(extra.text[:2], plain.text[:2])
        assert len(extra.hard) >= 1        # the target and the distractors are all negatives
    with pytest.raises(ConfigError, match='unmatched_share'):
        FitConfig(unmatched_share=-0.1)


def test_unmatched_names_a_colour_when_every_kind_is_taken():
    from nl_tracker_ros.scenes.appearance import SHAPES, ObjectSpec
    from nl_tracker_ros.scenes.grammar import unmatched
    rng = np.random.default_rng(0)
    every = [ObjectSpec(kind=k, colour='red') for k in SHAPES]
    for _ in range(20):
        colour, kind = unmatched(every, rng, 'kind').split()[1:]
        assert kind in SHAPES and colour != 'red'
    assert unmatched(every[1:], rng, 'kind') == f'the {SHAPES[0]}'


def test_fit_writes_weights_the_recovery_loads(samples, tmp_path):
    dim = get_preset('jointnlt-tiny').dim
    cfg = FitConfig(steps=3, batch_size=4)
    res = fit_recovery(samples, SMALL, dim, dim, cfg, log_every=1)
    assert [r['step'] for r in res.curve] == [1, 2, 3]
    assert all(np.isfinite(r['loss']) for r in res.curve)
    path = tmp_path / 'switch.safetensors'
    save_weights(path, res.switch, res.retrieval)
    rec = build_recovery(SMALL, dim, dim, weights=path)
    assert rec.uses_switch
    got = rec.switch.state_dict()
    for k, v in res.switch.state_dict().items():
        assert torch.equal(got[k], v)
    sep = separation(res.switch, samples)
    assert len(sep['target']) == sum(s.present for s in samples)
    assert len(sep['best_other']) == len(samples)
    assert len(sep['wrong_text']) == len(sep['target'])
    assert np.all(np.abs(sep['best_other']) <= 1.0 + 1e-5)


def test_contradicted_descriptions_never_fit_the_target():
    from nl_tracker_ros.scenes.grammar import contradict, phrase
    rng = np.random.default_rng(0)
    kinds = set()
    for i in range(40):
        recipe = get_mix('train').sample(np.random.default_rng([5, i, 0]), 320, 240, 20)
        plan = plan_scene(recipe, 5, i)
        spec = plan.target_seen.spec
        d = contradict(plan.description, spec, rng)
        fits = (d.noun == spec.kind and (not d.colour or d.colour == spec.colour)
                and (not d.texture or d.texture == spec.texture))
        assert not fits and not d.size and not d.position, (plan.text, d)
        assert d.noun in phrase(d, rng)
        kinds.add(spec.is_sprite)
    assert kinds == {True, False}      # both sprites and shapes were contradicted


def test_fit_config_checks_its_values():
    with pytest.raises(ConfigError, match='fit.steps'):
        FitConfig(steps=0)
    with pytest.raises(ConfigError, match='fit.global_share'):
        FitConfig(global_share=1.5)


def test_shipped_switch_goes_with_the_shipped_model_only(tmp_path, monkeypatch):
    from nl_tracker_ros.model import checkpoint
    from nl_tracker_ros.model.jointnlt import build_model
    from nl_tracker_ros.recovery.switch import build_modules
    dim = get_preset('jointnlt-tiny').dim
    monkeypatch.setattr(checkpoint, 'SHIPPED_DIR', tmp_path)
    save_weights(tmp_path / 'jointnlt-tiny.switch.safetensors',
                 *build_modules(MethodConfig(), dim, dim))
    shipped = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny', random_weights=True),
                                'cpu', RecoveryConfig())
    assert shipped.policy.scorer.uses_switch
    assert shipped.policy.kinds is None        # no kind classifier in this install: off
    own = tmp_path / 'own.safetensors'     # other model weights: the shipped switch does not fit
    checkpoint.save_weights(build_model(get_preset('jointnlt-tiny')), own)
    other = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny', weights=str(own)),
                              'cpu', RecoveryConfig())
    assert not other.policy.scorer.uses_switch
