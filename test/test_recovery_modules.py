"""AdaRS, TSR, the Recovery seam and its policy: random weights, small dims, shapes, plumbing."""
import dataclasses
import types

import numpy as np
import pytest
import torch

from nl_tracker_ros.config import from_dict
from nl_tracker_ros.errors import CheckpointError, ConfigError, InputError
from nl_tracker_ros.preprocessing import CropGeometry
from nl_tracker_ros.recovery.adars import GPO, AdaptiveRetrievalSwitch, decide
from nl_tracker_ros.recovery.config import (MethodConfig, RecoveryConfig, SearchConfig,
                                            SwitchConfig)
from nl_tracker_ros.recovery.policy import Policy
from nl_tracker_ros.model.identity import ModelIdentity
from nl_tracker_ros.recovery.switch import (build_modules, build_recovery, load_recovery,
                                            save_recovery)
from nl_tracker_ros.recovery.tsr import GuidedSelector, sliding_windows
from nl_tracker_ros.state_machine import Mode, StateMachineConfig
from nl_tracker_ros.track_types import EventKind, Step, TrackState

D, S = 16, 8
SMALL = MethodConfig(switch=SwitchConfig(dim=16, roi_size=3, fg_classifiers=3, parts=2,
                                         local_prototypes=2, heads=2, gpo_dim=8),
                     search=SearchConfig(dim=16, heads=2, roi_size=2, max_windows=200))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def text_features(n_pad=2, length=6):
    pad = torch.zeros(1, length, dtype=torch.bool)
    pad[0, length - n_pad:] = True
    return types.SimpleNamespace(tokens=torch.randn(1, length, D), pad_mask=pad,
                                 cls=torch.randn(1, D))


def head(tl=(1, 1), br=(5, 6), box=(0.9, 0.9, 0.1, 0.1)):
    """A fake HeadOutput: one sharp peak per corner map; ``box`` is the model's own cxcywh."""
    hm_tl = torch.full((1, S, S), 1e-4)
    hm_br = torch.full((1, S, S), 1e-4)
    hm_tl[0, tl[1], tl[0]] = 1.0
    hm_br[0, br[1], br[0]] = 1.0
    hm_tl /= hm_tl.sum()
    hm_br /= hm_br.sum()
    return types.SimpleNamespace(heatmap_tl=hm_tl, heatmap_br=hm_br,
                                 features=torch.randn(1, D, S, S),
                                 box_cxcywh=torch.tensor([box]),
                                 temporal=torch.zeros(1, 1, D))


def switch():
    return AdaptiveRetrievalSwitch(D, D, dim=16, roi_size=3, fg_classifiers=3, parts=2,
                                   local_prototypes=2, heads=2, gpo_dim=8)


def test_switch_shapes_and_unit_embeddings():
    sw = switch()
    feats = torch.randn(2, D, S, S)
    boxes = torch.rand(2, 5, 4) * 0.5 + 0.25
    text, attn = sw.embed_text(torch.randn(2, 6, D), torch.zeros(2, 6, dtype=torch.bool))
    assert text.shape == (2, 16) and attn.shape == (2, 3, 6)
    sims, aux = sw(feats, boxes, text)
    assert sims.shape == (2, 5) and torch.isfinite(sims).all()
    assert (sims.abs() <= 1 + 1e-5).all()
    assert aux.fg_logits.shape == (10, 9)          # 9 RoI cells per proposal
    assert aux.part_attn.shape == (10, 2, 9)
    assert aux.proto_attn.shape == (10, 3, 11)     # 1 global + 2 local over 9 cells + 2 parts
    emb, _ = sw.embed_regions(sw.roi_features(feats, boxes))
    assert torch.allclose(emb.norm(dim=-1), torch.ones(10), atol=1e-5)


def test_switch_gradients_reach_every_parameter():
    sw = switch()
    text, _ = sw.embed_text(torch.randn(2, 6, D))
    sims, aux = sw(torch.randn(2, D, S, S), torch.rand(2, 3, 4) * 0.5 + 0.25, text)
    (sims.sum() + aux.fg_logits.sum() + aux.part_attn.sum() + aux.proto_attn.sum()).backward()
    missing = [n for n, p in sw.named_parameters() if p.grad is None]
    assert not missing


def test_text_padding_does_not_change_the_text_embedding():
    sw = switch().eval()
    tokens = torch.randn(1, 4, D)
    short, _ = sw.embed_text(tokens)
    padded = torch.cat([tokens, torch.randn(1, 3, D) * 100], 1)
    mask = torch.tensor([[False] * 4 + [True] * 3])
    long, _ = sw.embed_text(padded, mask)
    assert torch.allclose(short, long, atol=1e-5)


def test_gpo_weights_depend_on_length_and_sum_to_one():
    gpo = GPO(8, 8)
    w = gpo.rank_weights(torch.tensor([3, 5, 3]), 5)
    assert w.shape == (3, 5)
    assert torch.allclose(w.sum(1), torch.ones(3))
    assert (w[0, 3:] == 0).all() and torch.allclose(w[0], w[2])


def test_decide_picks_best_valid_and_applies_threshold():
    sims = torch.tensor([[0.2, 0.9, 0.5], [0.1, 0.2, 0.3]])
    valid = torch.tensor([[True, False, True], [True, True, True]])
    idx, holds = decide(sims, valid, 0.4)
    assert idx.tolist() == [2, 2] and holds.tolist() == [True, False]


def test_roi_features_rejects_bad_shapes():
    with pytest.raises(InputError):
        switch().roi_features(torch.randn(1, D, S, S), torch.rand(5, 4))


def test_sliding_windows_cover_the_frame_and_respect_the_cap():
    w = sliding_windows(640, 480, (0.15, 0.3), (0.5, 1.0, 2.0), 0.5, (60, 120), (1.0,), 10000)
    assert w.shape[1] == 4 and len(w) > 50
    assert (w[:, 0] >= 0).all() and (w[:, 1] >= 0).all()
    assert (w[:, 0] + w[:, 2] <= 640 + 1e-6).all() and (w[:, 1] + w[:, 3] <= 480 + 1e-6).all()
    assert ((w[:, 2] == 60) & (w[:, 3] == 120)).any()          # the target-sized windows
    assert (w[:, 0] + w[:, 2]).max() == pytest.approx(640)     # reaches the right edge
    few = sliding_windows(640, 480, (0.15, 0.3), (0.5, 1.0, 2.0), 0.5, None, (), 100)
    assert len(few) <= 100
    with pytest.raises(InputError):
        sliding_windows(0, 480)


def test_selector_scores_every_window():
    sel = GuidedSelector(D, D, dim=16, heads=2, layers=1, roi_size=2)
    g = sel.guide_vector(torch.randn(1, 6, D), torch.zeros(1, 6, dtype=torch.bool),
                         torch.randn(1, 4, D))
    assert g.shape == (1, 16)
    logits = sel(torch.randn(1, D, S, S), torch.tensor([[0., 0., 4., 4.], [2., 2., 8., 6.]]), g)
    assert logits.shape == (2,) and torch.isfinite(logits).all()


def region(x0, y0, w, h) -> CropGeometry:
    """A model input covering (x0, y0, w, h) of the frame at one input pixel per frame pixel."""
    return CropGeometry(x0, y0, 1.0, 1.0, w, h)


def own(h, g) -> tuple:
    """The step's own box in the frame: the head's box mapped through the input geometry."""
    return tuple(g.norm_cxcywh_to_frame(h.box_cxcywh[0].numpy()))


def test_crop_geometry_says_which_part_of_the_frame_it_covers():
    g = CropGeometry(5.0, 7.0, 2.0, 4.0, 320, 320)
    assert g.frame_region == (5.0, 7.0, 160.0, 80.0)
    box = np.array([[30.0, 40.0, 50.0, 20.0]])
    assert np.allclose(g.norm_cxcywh_to_frame(g.frame_to_norm_cxcywh(box)), box)


def test_recovery_local_and_search_give_frame_boxes():
    rec = build_recovery(SMALL, D, D, random_init=True)
    assert rec.uses_switch
    rec.start(text_features(), torch.randn(1, 4, D))
    g = region(100.0, 50.0, 160.0, 160.0)
    h = head()
    res = rec.local(h, g, own(h, g))
    # the corner maps put the top proposal at cells (1, 1)-(5, 6) of 8: map to the frame (within
    # a pixel: each corner is the expectation over its basin, which holds the maps' small floor)
    assert tuple(res.proposals_xywh[0]) == pytest.approx((120.0, 70.0, 80.0, 100.0), abs=1.0)
    # the box is always the model's own (soft-argmax) box; the proposals give the score
    assert res.box_xywh == pytest.approx((236.0, 186.0, 16.0, 16.0), abs=1e-3)
    assert 0.0 <= res.score <= 1.0 and np.isfinite(res.similarity)
    assert res.proposals_xywh.shape[1] == 4 and len(res.similarities) == len(res.proposals_xywh)
    ev = res.evidence()
    assert ev.box_xywh == res.box_xywh and ev.score == res.score
    gl = rec.search(head(), region(0.0, 0.0, 640.0, 640.0), (512.0, 512.0, 64.0, 64.0),
                    (640, 480), (60.0, 80.0))
    assert gl.box_xywh is not None and gl.source in ('grounding', 'windows')
    assert gl.windows_xywh.shape == (SMALL.search.top_k, 4)
    assert 0.0 <= gl.score <= 1.0


@pytest.mark.parametrize('margin, source', [(1.0, 'grounding'), (-1.0, 'windows')])
def test_search_weighs_the_grounding_box_against_the_windows(margin, source):
    cfg = dataclasses.replace(SMALL, search=dataclasses.replace(SMALL.search,
                                                                window_margin=margin))
    rec = build_recovery(cfg, D, D, random_init=True)
    rec.start(text_features(), torch.randn(1, 4, D))
    box = (500.0, 510.0, 70.0, 60.0)   # the tracker's grounding box, pixels
    g = rec.search(head(), region(0.0, 0.0, 640.0, 640.0), box, (640, 480), (60.0, 80.0))
    assert g.source == source
    if source == 'grounding':
        assert g.box_xywh == pytest.approx(box) and len(g.windows_xywh) == SMALL.search.top_k
    else:
        assert g.box_xywh != pytest.approx(box)


def test_recovery_without_switch_scores_from_the_heatmap():
    rec = build_recovery(MethodConfig(), D, D)      # no weights: no switch
    assert not rec.uses_switch
    rec.start(text_features())
    g = region(0.0, 0.0, 80.0, 80.0)
    h = head()
    h.box_cxcywh = torch.tensor([[0.4, 0.45, 0.5, 0.6]])   # near the (1, 1)-(5, 6) proposal
    res = rec.local(h, g, own(h, g))
    assert res.box_xywh == pytest.approx((12.0, 12.0, 40.0, 48.0))
    assert np.isnan(res.similarity) and res.score == pytest.approx(res.heatmap_conf)
    assert res.score > 0.9                              # one sharp peak per corner
    flat = flat_head()
    assert rec.local(flat, g, own(flat, g)).score < 0.2
    gl = rec.search(head(), g, (66.0, 50.0, 10.0, 9.0), (80, 60))
    assert gl.source == 'grounding' and len(gl.windows_xywh) == 0
    assert gl.box_xywh == pytest.approx((66.0, 50.0, 10.0, 9.0))  # the tracker's grounding box
    assert gl.score == pytest.approx(gl.heatmap_conf) and gl.score > 0.9


def test_recovery_needs_a_description_first():
    rec = build_recovery(SMALL, D, D, random_init=True)
    g = region(0.0, 0.0, 80.0, 80.0)
    with pytest.raises(InputError):
        rec.local(head(), g, own(head(), g))


def test_weights_round_trip_build_from_their_metadata_and_refuse_what_does_not_fit(tmp_path):
    sw, ret = build_modules(SMALL, D, D)
    path = tmp_path / 'recovery.safetensors'
    model = ModelIdentity('jointnlt-tiny', 'ab' * 32)
    save_recovery(path, sw, ret, SMALL, D, D, model, {'sequences': ['a-1']})
    rec = load_recovery(path, model, D)       # the sizes come from the file, not from the caller
    assert rec.method == SMALL
    assert torch.equal(rec.switch.fg_keys, sw.fg_keys)
    assert torch.equal(rec.retrieval.selector.guide, ret.selector.guide)
    with pytest.raises(CheckpointError, match='fitted on 16-channel features, the model has 17'):
        load_recovery(path, model, D + 1)
    other = ModelIdentity('jointnlt-tiny', 'cd' * 32)
    with pytest.raises(CheckpointError) as err:
        load_recovery(path, other, D)
    msg = str(err.value)
    assert msg == (f'recovery switch {path} was fitted for jointnlt-tiny weights sha256 '
                   f'abababababab, not for the jointnlt-tiny weights sha256 cdcdcdcdcdcd in use; '
                   f'fit one with: nl-tracker train-recovery --preset jointnlt-tiny --weights '
                   f'FILE --data DIR')
    from safetensors.torch import load_file, save_file
    state = load_file(str(path))
    save_file(state, str(tmp_path / 'bare.safetensors'))        # no metadata: refused
    with pytest.raises(CheckpointError, match="expected a file written by nl-tracker "
                                              "train-recovery"):
        load_recovery(tmp_path / 'bare.safetensors', model, D)
    from safetensors import safe_open
    with safe_open(str(path), 'pt') as f:
        meta = f.metadata()
    state['switch.fg_keys'] = state['switch.fg_keys'][:1]
    save_file(state, str(tmp_path / 'cut.safetensors'), meta)
    with pytest.raises(CheckpointError, match=r'does not fit the modules of the sizes it records '
                                              r'\(\d+ entries, the file has \d+\): 1 shape '
                                              r'mismatches \[switch.fg_keys'):
        load_recovery(tmp_path / 'cut.safetensors', model, D)
    with pytest.raises(CheckpointError, match='not found'):
        load_recovery(tmp_path / 'missing.safetensors', model, D)


def test_recovery_config_refuses_unknown_keys_and_out_of_range_values():
    with pytest.raises(ConfigError, match='lost_after'):
        from_dict(RecoveryConfig, {'states': {'lost_after': 3}})
    with pytest.raises(ConfigError, match=r'recovery.colour_share: expected 0 .. 1, got 1.5'):
        from_dict(RecoveryConfig, {'colour_share': 1.5})
    with pytest.raises(ConfigError, match='recovery.kind_threshold'):
        RecoveryConfig(kind_threshold=1.0)


class FakeSteps:
    """Stands in for the Tracker's model steps: canned heads, real geometry; records calls."""

    def __init__(self):
        self.local_head = head()
        self.global_head = head(box=(0.4, 0.45, 0.5, 0.6))
        self.calls = []

    def _step(self, kind, h, g):
        return Step(kind, own(h, g), 0.5, h, g)

    def local_step(self, image, box):
        self.calls.append(('local', box))
        return self._step('local', self.local_head, region(box[0] - 40, box[1] - 40, 160, 160))

    def global_step(self, image):
        self.calls.append(('global', None))
        return self._step('global', self.global_head, region(0, 0, 320, 320))


def frame(policy, steps, image, stamp):
    """One frame as the Tracker drives it: plan, the planned step, evidence, decision."""
    plan = policy.plan(stamp)
    step = None
    if plan.mode == Mode.LOCAL:
        step = steps.local_step(image, plan.centre)
    elif plan.mode == Mode.GLOBAL:
        step = steps.global_step(image)
    return policy.decide(plan, policy.evidence(plan, step, image), stamp)


def flat_head():
    h = head()
    h.heatmap_tl = torch.full((1, S, S), 1.0 / S ** 2)
    h.heatmap_br = h.heatmap_tl.clone()
    return h


IMAGE = np.zeros((240, 320, 3), np.uint8)


def policy_of(states, colour=0.0, kinds=None, kind_threshold=0.0) -> Policy:
    """A policy whose scores come from the heatmaps (no switch)."""
    return Policy(states, build_recovery(MethodConfig(), D, D), colour, kinds, kind_threshold)


def begun(states):
    """A policy after the first frame of 'the ball': (policy, steps, decision)."""
    policy, steps = policy_of(states), FakeSteps()
    policy.command('the ball', 0.0)
    return policy, steps, frame(policy, steps, IMAGE, 0.1)


def test_policy_grounds_tracks_loses_and_refinds():
    policy, tr, d = begun(StateMachineConfig(trial_frames=0, lost_after_frames=2,
                                             search_timeout_s=100.0))
    assert tr.calls[-1][0] == 'global'
    assert d.state == TrackState.TRACKING and [e.kind for e in d.events] == [EventKind.ACQUIRED]
    assert d.template_box_xywh == d.box_xywh and d.follow
    assert d.candidate_xywh is None and d.candidate_score == 0.0    # held: the box says it all
    centre = policy.counters.box_xywh
    assert centre == d.box_xywh
    tr.local_head = tr.global_head = flat_head()   # nothing anywhere
    d = frame(policy, tr, IMAGE, 0.2)                      # weak: still tracking, centre kept
    assert tr.calls[-1] == ('local', centre)
    assert d.state == TrackState.TRACKING and not d.follow
    assert d.box_xywh is not None and d.score < 0.35
    d = frame(policy, tr, IMAGE, 0.25)
    assert tr.calls[-1] == ('local', centre) and policy.counters.box_xywh == centre
    assert d.state == TrackState.LOST and d.box_xywh is None and not d.follow
    assert [e.kind for e in d.events] == [EventKind.LOST]
    # not held, but the frame's best (weak) match still goes out as an unconfirmed candidate
    assert d.candidate_xywh is not None and 0.0 <= d.candidate_score < 0.35
    d = frame(policy, tr, IMAGE, 0.4)          # searching: the whole frame only
    assert tr.calls[-1] == ('global', None)
    assert d.state == TrackState.SEARCHING and d.box_xywh is None
    assert d.candidate_xywh is not None and d.candidate_score < 0.35
    tr.global_head = head((3, 2), (6, 7))
    d = frame(policy, tr, IMAGE, 0.5)
    assert d.state == TrackState.REFOUND and d.events[0].kind == EventKind.REFOUND
    # the track moves to the re-found box, but keeps the template of its acquisition
    assert policy.counters.box_xywh == d.box_xywh and d.follow and d.template_box_xywh is None
    assert d.candidate_xywh is None
    assert [e.kind for e in policy.command('', 0.6)] == [EventKind.STOPPED]
    assert policy.state == TrackState.IDLE


def test_a_match_lacking_the_named_colour_is_not_acquired():
    cfg = StateMachineConfig(trial_frames=1, grounding_timeout_s=0.25)
    black, red = IMAGE, IMAGE.copy()
    red[40:250, 40:220] = (220, 30, 30)      # under the whole-frame match (48, 48, 160, 192)

    def run(text, image, share=0.2):
        policy, steps = policy_of(cfg, colour=share), FakeSteps()
        policy.command(text, 0.0)
        return policy, [frame(policy, steps, image, t) for t in (0.1, 0.2, 0.3, 0.4)]

    policy, ds = run('the red ball', black)     # the timeout runs from the first frame
    assert all(d.state != TrackState.TRACKING and d.box_xywh is None for d in ds)
    assert ds[0].candidate_xywh is not None and ds[0].candidate_score == 0.0
    assert policy.colour == 'red' and policy.rejections['colour'] == 4
    found = [e for d in ds for e in d.events if e.kind == EventKind.NOT_FOUND]
    assert len(found) == 1 and '4 matches lacked the colour red' in found[0].reason
    # the colour is there, no colour is named, or the check is off: acquired as before
    for text, image, share in (('the red ball', red, 0.2), ('the ball', black, 0.2),
                               ('the red ball', black, 0.0)):
        policy, ds = run(text, image, share)
        assert ds[-1].state == TrackState.TRACKING and policy.rejections['colour'] == 0


class StubKinds:
    """A kind check that knows 'ball' and answers ``p`` for every box; counts its calls."""

    def __init__(self, p):
        self.p, self.asked = p, []

    def named(self, text):
        return 'ball' if 'ball' in text else None

    def probability(self, image, box_xywh, kind):
        self.asked.append(kind)
        return self.p


def test_a_match_unlikely_to_show_the_named_kind_is_not_acquired():
    cfg = StateMachineConfig(trial_frames=1, grounding_timeout_s=0.25)

    def run(p, text='the ball', threshold=0.5):
        kinds, steps = StubKinds(p), FakeSteps()
        policy = policy_of(cfg, kinds=kinds, kind_threshold=threshold)
        policy.command(text, 0.0)
        return policy, kinds, [frame(policy, steps, IMAGE, t) for t in (0.1, 0.2, 0.3, 0.4)]

    policy, kinds, ds = run(0.2)
    assert policy.kind == 'ball' and kinds.asked == ['ball'] * 4
    assert all(d.box_xywh is None for d in ds) and ds[0].candidate_score == 0.0
    found = [e for d in ds for e in d.events if e.kind == EventKind.NOT_FOUND]
    assert len(found) == 1 and '4 matches did not look like a ball' in found[0].reason
    assert 'colour' not in found[0].reason
    policy, kinds, ds = run(0.9)
    assert ds[-1].state == TrackState.TRACKING and policy.rejections['kind'] == 0
    assert len(kinds.asked) == 2             # on the match and its trial, not once held
    # a kind the classifier does not know, or the check off: never asked
    for text, threshold in (('the person', 0.5), ('the ball', 0.0)):
        policy, kinds, ds = run(0.2, text, threshold)
        assert ds[-1].state == TrackState.TRACKING and kinds.asked == []


def test_trial_tracks_the_match_with_its_template_before_acquiring():
    policy, tr, d = begun(StateMachineConfig(trial_frames=1, search_timeout_s=100.0))
    assert tr.calls[-1][0] == 'global'
    # matched, not yet held: the match is encoded as the template and followed locally
    assert d.state == TrackState.GROUNDING and d.box_xywh is None and d.events == ()
    assert d.template_box_xywh == d.candidate_xywh == policy.counters.candidate and d.follow
    d2 = frame(policy, tr, IMAGE, 0.2)
    assert tr.calls[-1] == ('local', d.candidate_xywh)
    assert d2.state == TrackState.TRACKING and [e.kind for e in d2.events] == [EventKind.ACQUIRED]
    assert d2.template_box_xywh is None          # encoded when the trial began
    assert d2.box_xywh == policy.counters.box_xywh and d2.follow


def test_failed_trial_goes_back_to_the_whole_frame():
    policy, tr, _ = begun(StateMachineConfig(trial_frames=2, search_timeout_s=100.0))
    tr.local_head = flat_head()                  # the match does not survive being tracked
    d = frame(policy, tr, IMAGE, 0.2)
    assert [c[0] for c in tr.calls] == ['global', 'local']
    assert d.state == TrackState.GROUNDING and d.events == () and d.box_xywh is None
    assert not d.follow and d.template_box_xywh is None
    frame(policy, tr, IMAGE, 0.3)
    assert tr.calls[-1][0] == 'global'


def test_policy_reports_the_trackers_grounding_box():
    # the Step's box, not the head's box mapped again: under geometry 'official' they differ
    policy, tr = policy_of(StateMachineConfig(trial_frames=0)), FakeSteps()
    mapped = tr.global_step

    def global_step(image):
        s = mapped(image)
        return dataclasses.replace(s, box_xywh=(101.0, 42.0, 160.0, 190.0))  # head: 48, 48, ..
    tr.global_step = global_step
    policy.command('the ball', 0.0)
    d = frame(policy, tr, IMAGE, 0.1)
    assert d.state == TrackState.TRACKING
    assert d.box_xywh == d.template_box_xywh == (101.0, 42.0, 160.0, 190.0)


def test_plain_policy_holds_the_first_grounding_and_never_loses():
    policy, tr = Policy(), FakeSteps()           # the handling off: no scorer, plain states
    policy.command('the ball', 0.0)
    tr.global_head = flat_head()                 # even a hopeless grounding is acquired
    d = frame(policy, tr, IMAGE, 0.1)
    assert d.state == TrackState.TRACKING and d.events[0].kind == EventKind.ACQUIRED
    assert d.score == 0.5                        # the step's own confidence
    tr.local_head = flat_head()
    for t in range(2, 30):
        d = frame(policy, tr, IMAGE, 0.1 * t)
        assert d.state == TrackState.TRACKING and d.events == () and d.follow
    assert [c[0] for c in tr.calls] == ['global'] + ['local'] * 28


def test_policy_with_given_box_reports_it_and_sends_acquired_with_frame_stamp():
    policy, tr = policy_of(StateMachineConfig()), FakeSteps()
    box = (50.0, 60.0, 40.0, 40.0)
    ev = policy.command('the cup', 1.0, box)
    assert [e.kind for e in ev] == [EventKind.COMMAND_ACCEPTED] and ev[0].box_xywh == box
    d = frame(policy, tr, IMAGE, 1.5)
    assert tr.calls == []                        # the given box is the first frame's answer
    assert d.box_xywh == d.template_box_xywh == box and d.score == 1.0
    acq = [e for e in d.events if e.kind == EventKind.ACQUIRED]
    assert len(acq) == 1 and acq[0].stamp == 1.5 and acq[0].track_id == ev[0].track_id
    frame(policy, tr, IMAGE, 1.6)
    assert tr.calls == [('local', box)]
