"""Tracker API: command handling, grounding then tracking, caching, events, recovery seam."""
import ast
import dataclasses
import math
import pathlib

import numpy as np
import pytest
import torch

from nl_tracker_ros import tracker as trk
from nl_tracker_ros.errors import ConfigError, InputError
from nl_tracker_ros.model.config import get_preset
from nl_tracker_ros.model.jointnlt import HeadOutput, TextFeatures
from nl_tracker_ros.recovery.policy import Policy
from nl_tracker_ros.state_machine import Evidence, StateMachineConfig
from nl_tracker_ros.text import TextTokenizer
from nl_tracker_ros.track_types import EventKind, TrackState

MC = get_preset('jointnlt-tiny')


class FakeModel(torch.nn.Module):
    """Contract-shaped stand-in: fixed normalised boxes, counts its calls, keeps its inputs."""

    def __init__(self, ground_box=(0.5, 0.5, 0.2, 0.2), track_box=(0.6, 0.5, 0.1, 0.1), d=8):
        super().__init__()
        self.ground_box, self.track_box, self.d = ground_box, track_box, d
        self.calls = {'text': 0, 'image': 0, 'ground': 0, 'track': 0}
        self.images = []
        self.temporals = []

    def encode_text(self, ids, mask):
        self.calls['text'] += 1
        b, n = ids.shape
        tok = torch.zeros(b, n, self.d)
        return TextFeatures(tok, mask == 0, tok[:, 0])

    def encode_image(self, x):
        self.calls['image'] += 1
        self.images.append(x)
        b, _, h, w = x.shape
        return torch.zeros(b, (h // 16) * (w // 16), self.d)

    def _head(self, box, n):
        s = int(math.sqrt(n))
        heat = torch.full((1, s, s), 1.0 / (s * s))
        heat[0, 0, 0] = 0.5
        temporal = torch.full((1, 1, self.d), float(self.calls['track']))
        return HeadOutput(torch.tensor([box]), heat, heat, temporal,
                          torch.zeros(1, self.d, s, s), torch.tensor([0.5]))

    def ground(self, text, tokens, pad):
        self.calls['ground'] += 1
        assert pad.shape == tokens.shape[:2] and pad.dtype == torch.bool
        return self._head(self.ground_box, tokens.shape[1])

    def track(self, text, template, search, temporal, *, template_pad_mask=None,
              search_pad_mask=None):
        self.calls['track'] += 1
        self.temporals.append(temporal)
        assert template_pad_mask.shape == template.shape[:2]
        assert search_pad_mask.shape == search.shape[:2]
        return self._head(self.track_box, search.shape[1])


def _fake_tracker(policy=None, **kw):
    model = FakeModel(**kw)
    cfg = trk.TrackerConfig(preset='jointnlt-tiny', random_weights=True)
    return trk.Tracker(model, MC, cfg, torch.device('cpu'), TextTokenizer(), policy), model


def _frame(h=240, w=320, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_ground_then_track_with_events_and_timing():
    tr, model = _fake_tracker()
    ev = tr.set_command('the red square', 1.0)
    assert [e.kind for e in ev] == [EventKind.COMMAND_ACCEPTED] and ev[0].track_id == 1
    assert tr.state == TrackState.GROUNDING
    im = _frame()
    r = tr.update(im, 1.1)
    assert r.state == TrackState.TRACKING and r.track_id == 1 and r.text == 'the red square'
    assert [e.kind for e in r.events] == [EventKind.ACQUIRED]
    # Grounding box (0.5, 0.5, 0.2, 0.2) of the 320 input: the 320x240 frame is resized 1:1.
    np.testing.assert_allclose(r.box_xywh, (128, 128, 64, 64), atol=1e-6)
    assert r.events[0].box_xywh == r.box_xywh
    assert r.score == pytest.approx(0.5)
    for key in ('text', 'preprocess', 'encode_image', 'ground', 'template', 'total'):
        assert r.timing_ms[key] >= 0
    r2 = tr.update(im, 1.2)
    assert r2.state == TrackState.TRACKING and r2.events == ()
    assert 'track' in r2.timing_ms and 'ground' not in r2.timing_ms and 'text' not in r2.timing_ms


def test_text_once_per_command_template_once_per_template():
    tr, model = _fake_tracker()
    tr.set_command('a dog', 0.0)
    im = _frame()
    for i in range(5):
        tr.update(im, 0.1 * i)
    assert model.calls['text'] == 1
    assert model.calls['ground'] == 1 and model.calls['track'] == 4
    # ground image + template on frame 1, then one search crop per frame.
    assert model.calls['image'] == 2 + 4
    sizes = [tuple(x.shape[-2:]) for x in model.images[:3]]
    assert sizes == [(320, 320), (128, 128), (320, 320)]


def test_search_region_follows_the_last_box_and_temporal_chains():
    tr, model = _fake_tracker()
    tr.set_command('a dog', 0.0)
    im = _frame(480, 640)
    prev = tr.update(im, 0.0).box_xywh
    for i in range(3):
        r = tr.update(im, 0.1 * (i + 1))
        side = math.ceil(math.sqrt(prev[2] * prev[3]) * MC.search_factor)
        cx_prev = prev[0] + prev[2] / 2
        cx = r.box_xywh[0] + r.box_xywh[2] / 2
        # Head says the centre is at 0.6 of the crop: 0.1 * side right of the crop centre.
        assert cx - cx_prev == pytest.approx(0.1 * side, abs=0.51)
        assert r.box_xywh[2] == pytest.approx(max(0.1 * side, trk.MIN_BOX_PX))
        prev = r.box_xywh
    # Each track call gets the temporal output of the previous step.
    assert model.temporals[0] is not None
    assert [float(t[0, 0, 0]) for t in model.temporals[1:]] == [1.0, 2.0]


def test_official_geometry_maps_back_around_the_unrounded_centre():
    model = FakeModel()
    cfg = trk.TrackerConfig(preset='jointnlt-tiny', geometry='official', random_weights=True)
    tr = trk.Tracker(model, MC, cfg, torch.device('cpu'), TextTokenizer())
    tr.set_command('a dog', 0.0, box_xywh=(300.3, 200.6, 41.0, 33.0))
    im = _frame(480, 640)
    prev = tr.update(im, 0.0).box_xywh
    r = tr.update(im, 0.1)
    side = math.ceil(math.sqrt(prev[2] * prev[3]) * MC.search_factor)
    cx_prev, cy_prev = prev[0] + prev[2] / 2, prev[1] + prev[3] / 2
    assert r.box_xywh[0] + r.box_xywh[2] / 2 == pytest.approx(cx_prev + 0.1 * side, abs=1e-4)
    assert r.box_xywh[1] + r.box_xywh[3] / 2 == pytest.approx(cy_prev, abs=1e-4)
    assert r.box_xywh[2] == pytest.approx(0.1 * side)


def test_boxes_stay_inside_the_frame():
    tr, _ = _fake_tracker(track_box=(0.95, 0.95, 0.5, 0.5))
    tr.set_command('a dog', 0.0)
    im = _frame(120, 160)
    for i in range(6):
        x, y, w, h = tr.update(im, i).box_xywh
        assert 0 <= x and 0 <= y and x + w <= 160 + 1e-6 and y + h <= 120 + 1e-6
        assert w >= trk.MIN_BOX_PX and h >= trk.MIN_BOX_PX


def test_init_box_skips_grounding():
    tr, model = _fake_tracker()
    ev = tr.set_command('a dog', 0.0, box_xywh=(10, 20, 30, 40))
    assert ev[0].kind == EventKind.COMMAND_ACCEPTED and ev[0].box_xywh == (10, 20, 30, 40)
    r = tr.update(_frame(), 0.1)
    assert r.box_xywh == (10.0, 20.0, 30.0, 40.0) and r.state == TrackState.TRACKING
    assert r.events[0].kind == EventKind.ACQUIRED and r.score == 1.0
    assert model.calls['ground'] == 0 and model.calls['image'] == 1   # template only


@pytest.mark.parametrize('box', [(np.nan, 0, 5, 5), (-1, 0, 5, 5), (0, 0, 0, 5), (1, 2, 3),
                                 'abc'])
def test_bad_init_boxes_are_rejected_and_the_track_goes_on(box):
    tr, _ = _fake_tracker()
    tr.set_command('a dog', 0.0)
    tr.update(_frame(), 0.1)
    ev = tr.set_command('a cat', 0.2, box_xywh=box)
    assert [e.kind for e in ev] == [EventKind.COMMAND_REJECTED]
    assert 'init box' in ev[0].reason
    assert tr.track_id == 1 and tr.text == 'a dog' and tr.state == TrackState.TRACKING


def test_out_of_image_init_box_is_rejected_now_or_on_the_next_frame():
    tr, _ = _fake_tracker()
    ev = tr.set_command('a dog', 0.0, box_xywh=(300, 200, 50, 50), image_size=(320, 240))
    assert ev[0].kind == EventKind.COMMAND_REJECTED
    ev = tr.set_command('a dog', 0.0, box_xywh=(300, 200, 50, 50))
    assert ev[0].kind == EventKind.COMMAND_ACCEPTED
    r = tr.update(_frame(), 0.1)
    assert [e.kind for e in r.events] == [EventKind.COMMAND_REJECTED]
    assert r.state == TrackState.IDLE and r.box_xywh is None
    assert tr.update(_frame(), 0.2).state == TrackState.IDLE


def test_commands_new_ids_rejections_and_stop():
    tr, _ = _fake_tracker()
    im = _frame()
    assert tr.set_command('one', 0.0)[0].track_id == 1
    tr.update(im, 0.1)
    assert tr.set_command('two', 0.2)[0].track_id == 2
    assert tr.state == TrackState.GROUNDING
    rej = tr.set_command('\x00', 0.3)
    assert rej[0].kind == EventKind.COMMAND_REJECTED and tr.track_id == 2 and tr.text == 'two'
    long = tr.set_command('the dog ' * 40, 0.4)
    assert long[0].kind == EventKind.COMMAND_ACCEPTED and 'truncated' in long[0].reason
    assert long[0].track_id == 3
    tr.update(im, 0.5)
    stop = tr.set_command('   ', 0.6)
    assert [e.kind for e in stop] == [EventKind.STOPPED] and stop[0].track_id == 3
    r = tr.update(im, 0.7)
    assert r.state == TrackState.IDLE and r.box_xywh is None and r.score == 0.0
    assert tr.set_command('four', 0.8)[0].track_id == 4


def test_reset_goes_idle():
    tr, _ = _fake_tracker()
    tr.set_command('one', 0.0)
    tr.update(_frame(), 0.1)
    tr.reset()
    assert tr.update(_frame(), 0.2).state == TrackState.IDLE
    assert tr.set_command('two', 0.3)[0].track_id == 2


@pytest.mark.parametrize('bad', [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10), np.uint8),
                                 np.zeros((10, 10, 4), np.uint8), None])
def test_bad_images_raise_input_error(bad):
    tr, _ = _fake_tracker()
    tr.set_command('a dog', 0.0)
    with pytest.raises(InputError):
        tr.update(bad, 0.1)


class ScriptedPolicy(Policy):
    """The real policy's state machine, with the evidence scripted per frame: a match on
    frame 1, weak frames 3-4 (LOST after two), a match again on frame 5 (REFOUND)."""

    def __init__(self):
        super().__init__(StateMachineConfig(trial_frames=0, lost_after_frames=2))
        self.frame, self.steps, self.templates = 0, [], 0

    def template_changed(self, template_tokens):
        self.templates += 1

    def evidence(self, plan, step, image):
        self.frame += 1
        self.steps.append(None if step is None else (step.kind, plan.centre))
        if self.frame in (3, 4):
            return Evidence(0.1, step.box_xywh)
        if self.frame == 5:
            return Evidence(0.9, (5.0, 5.0, 20.0, 20.0))
        return Evidence(0.9, step.box_xywh)


def test_the_tracker_runs_the_steps_its_policy_plans_and_applies_the_decisions():
    policy = ScriptedPolicy()
    tr, model = _fake_tracker(policy)
    tr.set_command('a dog', 0.0)
    im = _frame(480, 640)
    r1 = tr.update(im, 0.1)
    assert r1.state == TrackState.TRACKING and 'recovery' in r1.timing_ms
    assert policy.steps == [('global', None)] and policy.templates == 1
    r2 = tr.update(im, 0.2)
    assert policy.steps[-1] == ('local', r1.box_xywh)
    r3 = tr.update(im, 0.3)
    assert policy.steps[-1] == ('local', r2.box_xywh) and r3.box_xywh is not None
    r4 = tr.update(im, 0.4)
    assert r4.state == TrackState.LOST and r4.box_xywh is None
    assert policy.steps[-1] == ('local', r2.box_xywh)       # weak frames moved nothing
    images_before = model.calls['image']
    r5 = tr.update(im, 0.5)                       # searching: the whole frame, re-found
    assert policy.steps[-1] == ('global', None)
    assert r5.state == TrackState.REFOUND and r5.box_xywh == (5.0, 5.0, 20.0, 20.0)
    assert model.calls['image'] == images_before + 1   # the whole frame; the template stays
    assert policy.templates == 1
    tr.update(im, 0.6)
    assert policy.steps[-1] == ('local', (5.0, 5.0, 20.0, 20.0))
    # the temporal clue comes from the last followed step: frame 4 kept frame 2's (frame 3
    # was weak), frame 6 got frame 5's whole-frame clue (the fake stamps clues with the number
    # of track calls before them)
    assert [float(t[0, 0, 0]) for t in model.temporals] == [0.0, 1.0, 1.0, 3.0]
    assert [e.kind for e in tr.set_command('', 0.7)] == [EventKind.STOPPED]
    assert tr.state == TrackState.IDLE


def test_tracker_core_does_not_import_ros():
    src = pathlib.Path(trk.__file__).read_text()
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or '')
    assert not any(n.startswith('rclpy') or n.endswith('_msgs') or '.ros' in n for n in names)


def test_config_and_device_validation():
    with pytest.raises(ConfigError):
        trk.resolve_device('tpu')
    with pytest.raises(ConfigError, match='tracker.threads'):
        trk.TrackerConfig(threads=-1)
    with pytest.raises(ConfigError):
        trk.TrackerConfig(geometry='approximate')
    assert trk.resolve_device('cpu').type == 'cpu'


# -- the real tiny model ---------------------------------------------------------------------

@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    return trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny', random_weights=True), 'cpu')


def test_tiny_model_tracks_with_finite_boxes_inside_the_frame(tiny):
    tiny.set_command('the person in the red jacket', 0.0)
    im = _frame(200, 300, seed=3)
    for i in range(3):
        r = tiny.update(im, 0.1 * i)
        x, y, w, h = r.box_xywh
        assert all(math.isfinite(v) for v in r.box_xywh)
        assert 0 <= x and 0 <= y and x + w <= 300 + 1e-6 and y + h <= 200 + 1e-6
        assert 0.0 < r.score <= 1.0
        assert r.state == TrackState.TRACKING
    assert tiny.template_tokens.shape == (1, MC.template_tokens, MC.dim)


def test_tiny_weights_round_trip_and_wrong_architecture(tiny, tmp_path):
    from nl_tracker_ros.errors import CheckpointError
    from nl_tracker_ros.model import checkpoint
    path = tmp_path / 'tiny.safetensors'
    checkpoint.save_weights(tiny.model, path)
    other = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny', weights=str(path)),
                              'cpu')
    for a, b in zip(tiny.model.state_dict().values(), other.model.state_dict().values()):
        assert torch.equal(a, b)
    from safetensors.torch import save_file
    state = {k: v.contiguous() for k, v in tiny.model.state_dict().items()}
    state.pop(next(iter(state)))
    state['other.weight'] = torch.zeros(2)
    save_file(state, str(tmp_path / 'other.safetensors'))
    bad = dataclasses.replace(trk.TrackerConfig(preset='jointnlt-tiny', random_weights=True),
                              weights=str(tmp_path / 'other.safetensors'))
    with pytest.raises(CheckpointError, match='other.weight'):
        trk.build_tracker(bad, 'cpu')
    with pytest.raises(CheckpointError):
        trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny',
                                            weights=str(tmp_path / 'none.safetensors')), 'cpu')
