"""AdaRS, TSR, the Recovery seam and its policy: random weights, small dims, shapes, plumbing."""
import dataclasses
import pathlib
import types

import numpy as np
import pytest
import torch

from nl_tracker_ros.config import from_dict, load_yaml, to_dict
from nl_tracker_ros.errors import CheckpointError, ConfigError, InputError
from nl_tracker_ros.recovery import RecoveryConfig, Region, build_recovery
from nl_tracker_ros.recovery.adars import GPO, AdaptiveRetrievalSwitch, decide
from nl_tracker_ros.recovery.config import SearchConfig, SwitchConfig
from nl_tracker_ros.recovery.policy import RecoveryPolicy
from nl_tracker_ros.recovery.switch import build_modules, load_weights, save_weights
from nl_tracker_ros.recovery.tsr import GuidedSelector, sliding_windows
from nl_tracker_ros.state_machine import StateMachineConfig
from nl_tracker_ros.track_types import EventKind, TrackState

ROOT = pathlib.Path(__file__).resolve().parents[1]
D, S = 16, 8
SMALL = RecoveryConfig(switch=SwitchConfig(dim=16, roi_size=3, fg_classifiers=3, parts=2,
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


def test_region_round_trip_and_geometry():
    r = Region(-20.0, 10.0, 200.0, 100.0)
    box = np.array([[30.0, 40.0, 50.0, 20.0]])
    assert np.allclose(r.to_frame(r.to_input(box)), box)
    g = types.SimpleNamespace(offset_x=5.0, offset_y=7.0, scale_x=2.0, scale_y=4.0, width=320,
                              height=320)
    assert Region.from_geometry(g) == Region(5.0, 7.0, 160.0, 80.0)


def test_recovery_local_and_search_give_frame_boxes():
    # keep_head_iou 0.5: the winner does not overlap the model's box, so it is reported
    cfg = dataclasses.replace(SMALL, proposals=dataclasses.replace(SMALL.proposals,
                                                                   keep_head_iou=0.5))
    rec = build_recovery(cfg, D, D, random_init=True)
    assert rec.uses_switch
    rec.start(text_features(), torch.randn(1, 4, D))
    region = Region(100.0, 50.0, 160.0, 160.0)
    res = rec.local(head(), region)
    # the corner maps put the top proposal at cells (1, 1)-(5, 6) of 8: map to the frame (within
    # a pixel: each corner is the expectation over its basin, which holds the maps' small floor)
    assert res.box_xywh == pytest.approx((120.0, 70.0, 80.0, 100.0), abs=1.0)
    # the default keep_head_iou 0 always reports the model's own (soft-argmax) box
    own = build_recovery(SMALL, D, D, random_init=True)
    own.start(text_features(), torch.randn(1, 4, D))
    mine = own.local(head(), region)
    assert mine.box_xywh == pytest.approx((236.0, 186.0, 16.0, 16.0), abs=1e-3)
    assert 0.0 <= mine.score <= 1.0
    assert 0.0 <= res.score <= 1.0 and np.isfinite(res.similarity)
    assert res.proposals_xywh.shape[1] == 4 and len(res.similarities) == len(res.proposals_xywh)
    ev = res.evidence()
    assert ev.box_xywh == res.box_xywh and ev.score == res.score
    g = rec.search(head(), Region(0.0, 0.0, 640.0, 640.0), (512.0, 512.0, 64.0, 64.0),
                   (640, 480), (60.0, 80.0))
    assert g.box_xywh is not None and g.source in ('grounding', 'windows')
    assert g.windows_xywh.shape == (SMALL.search.top_k, 4)
    assert 0.0 <= g.score <= 1.0


@pytest.mark.parametrize('margin, source', [(1.0, 'grounding'), (-1.0, 'windows')])
def test_search_weighs_the_grounding_box_against_the_windows(margin, source):
    cfg = dataclasses.replace(SMALL, search=dataclasses.replace(SMALL.search,
                                                                window_margin=margin))
    rec = build_recovery(cfg, D, D, random_init=True)
    rec.start(text_features(), torch.randn(1, 4, D))
    own = (500.0, 510.0, 70.0, 60.0)   # the tracker's grounding box, pixels
    g = rec.search(head(), Region(0.0, 0.0, 640.0, 640.0), own, (640, 480), (60.0, 80.0))
    assert g.source == source
    if source == 'grounding':
        assert g.box_xywh == pytest.approx(own) and len(g.windows_xywh) == SMALL.search.top_k
    else:
        assert g.box_xywh != pytest.approx(own)


def test_recovery_local_keeps_the_model_box_when_it_agrees():
    rec = build_recovery(RecoveryConfig(), D, D)
    rec.start(text_features())
    h = head()
    h.box_cxcywh = torch.tensor([[0.4, 0.45, 0.5, 0.6]])   # near the (1, 1)-(5, 6) proposal
    res = rec.local(h, Region(0.0, 0.0, 80.0, 80.0))
    assert res.box_xywh == pytest.approx((12.0, 12.0, 40.0, 48.0))
    assert res.score > 0.9


def test_recovery_without_switch_scores_from_the_heatmap():
    rec = build_recovery(RecoveryConfig(), D, D)      # no weights: no switch
    assert not rec.uses_switch
    rec.start(text_features())
    res = rec.local(head(), Region(0.0, 0.0, 80.0, 80.0))
    assert np.isnan(res.similarity) and res.score == pytest.approx(res.heatmap_conf)
    assert res.score > 0.9                              # one sharp peak per corner
    flat = head()
    flat.heatmap_tl = torch.full((1, S, S), 1.0 / S ** 2)
    flat.heatmap_br = flat.heatmap_tl.clone()
    assert rec.local(flat, Region(0.0, 0.0, 80.0, 80.0)).score < 0.2
    g = rec.search(head(), Region(0.0, 0.0, 80.0, 80.0), (66.0, 50.0, 10.0, 9.0), (80, 60))
    assert g.source == 'grounding' and len(g.windows_xywh) == 0
    assert g.box_xywh == pytest.approx((66.0, 50.0, 10.0, 9.0))  # the tracker's grounding box
    assert g.score == pytest.approx(g.heatmap_conf) and g.score > 0.9


def test_recovery_needs_a_description_first():
    rec = build_recovery(SMALL, D, D, random_init=True)
    with pytest.raises(InputError):
        rec.local(head(), Region(0.0, 0.0, 80.0, 80.0))


def test_weights_round_trip_and_mismatch(tmp_path):
    sw, ret = build_modules(SMALL, D, D)
    path = tmp_path / 'recovery.safetensors'
    save_weights(path, sw, ret)
    cfg = dataclasses.replace(SMALL, switch=dataclasses.replace(SMALL.switch, weights=str(path)))
    rec = build_recovery(cfg, D, D)
    assert torch.equal(rec.switch.fg_keys, sw.fg_keys)
    assert torch.equal(rec.retrieval.selector.guide, ret.selector.guide)
    with pytest.raises(CheckpointError, match='do not fit'):
        build_recovery(cfg, D + 1, D)
    with pytest.raises(CheckpointError, match='not found'):
        load_weights(tmp_path / 'missing.safetensors', sw, ret)


def test_yaml_holds_the_dataclass_defaults():
    data = load_yaml(ROOT / 'config' / 'recovery.yaml')
    assert from_dict(RecoveryConfig, data) == RecoveryConfig()
    assert to_dict(RecoveryConfig()) == data
    with pytest.raises(ConfigError):
        from_dict(RecoveryConfig, {'states': {'lost_after': 3}})
    with pytest.raises(ConfigError, match='search.verify_iou'):
        from_dict(RecoveryConfig, {'search': {'verify_iou': 1.5}})


class FakeTracker:
    """Stands in for nl_tracker_ros.tracker.Tracker: returns canned heads."""

    def __init__(self):
        self.text_features = text_features()
        self.template_tokens = torch.randn(1, 4, D)
        self.search_box_xywh = None
        self.local_head = head()
        self.global_head = head(box=(0.4, 0.45, 0.5, 0.6))
        self.calls = []

    def _step(self, kind, h, region):
        g = types.SimpleNamespace(offset_x=region[0], offset_y=region[1], scale_x=1.0,
                                  scale_y=1.0, width=region[2], height=region[3])
        box = tuple(Region(*region).to_frame(h.box_cxcywh[0].numpy())[0])   # exact geometry
        return types.SimpleNamespace(kind=kind, head=h, geometry=g, box_xywh=box)

    def local_step(self, image, box):
        self.calls.append(('local', box))
        return self._step('local', self.local_head, (box[0] - 40, box[1] - 40, 160, 160))

    def global_step(self, image):
        self.calls.append(('global', None))
        return self._step('global', self.global_head, (0, 0, 320, 320))


def flat_head():
    h = head()
    h.heatmap_tl = torch.full((1, S, S), 1.0 / S ** 2)
    h.heatmap_br = h.heatmap_tl.clone()
    return h


IMAGE = np.zeros((240, 320, 3), np.uint8)


def begun(cfg, search=SearchConfig()):
    """A policy (no switch: heatmap scores) after its first frame: (policy, tracker, decision)."""
    policy = RecoveryPolicy(build_recovery(RecoveryConfig(), D, D), cfg, search)
    tr = FakeTracker()
    policy.begin(1, 'the ball', 0.0, None)
    return policy, tr, policy.step(tr, IMAGE, 0.1)


def test_policy_grounds_tracks_loses_and_refinds():
    pytest.importorskip('nl_tracker_ros.tracker')
    policy, tr, d = begun(StateMachineConfig(confirm_frames=1, trial_frames=0,
                                             lost_after_frames=2, search_timeout_s=100.0))
    assert tr.calls[-1][0] == 'global'
    assert d.state == TrackState.TRACKING and [e.kind for e in d.events] == [EventKind.ACQUIRED]
    assert d.template_box_xywh == d.search_box_xywh == d.box_xywh
    assert d.candidate_xywh is None and d.candidate_score == 0.0    # held: the box says it all
    centre = d.search_box_xywh
    tr.local_head = tr.global_head = flat_head()   # nothing anywhere
    d = policy.step(tr, IMAGE, 0.2)                        # weak: still tracking, centre kept
    assert tr.calls[-1] == ('local', centre)
    assert d.state == TrackState.TRACKING and d.search_box_xywh is None
    assert d.box_xywh is not None and d.score < 0.35
    d = policy.step(tr, IMAGE, 0.25)
    assert tr.calls[-1] == ('local', centre)
    assert d.state == TrackState.LOST and d.box_xywh is None and d.search_box_xywh is None
    assert [e.kind for e in d.events] == [EventKind.LOST]
    # not held, but the frame's best (weak) match still goes out as an unconfirmed candidate
    assert d.candidate_xywh is not None and 0.0 <= d.candidate_score < 0.35
    d = policy.step(tr, IMAGE, 0.4)          # searching: the whole frame only
    assert tr.calls[-1] == ('global', None)
    assert d.state == TrackState.SEARCHING and d.box_xywh is None
    assert d.candidate_xywh is not None and d.candidate_score < 0.35
    tr.global_head = head((3, 2), (6, 7))
    d = policy.step(tr, IMAGE, 0.5)
    assert d.state == TrackState.REFOUND and d.events[0].kind == EventKind.REFOUND
    # the track moves to the re-found box, but keeps the template of its acquisition
    assert d.search_box_xywh == d.box_xywh and d.template_box_xywh is None
    assert d.candidate_xywh is None
    policy.begin(2, '', 0.6, None)
    assert policy.state == TrackState.IDLE


def test_a_match_lacking_the_named_colour_is_not_acquired():
    cfg = StateMachineConfig(confirm_frames=1, trial_frames=1, grounding_timeout_s=0.25)
    black, red = IMAGE, IMAGE.copy()
    red[40:250, 40:220] = (220, 30, 30)      # under the whole-frame match (48, 48, 160, 192)

    def run(text, image, share=0.2):
        policy = RecoveryPolicy(build_recovery(RecoveryConfig(), D, D), cfg,
                                SearchConfig(colour_share=share))
        tr = FakeTracker()
        policy.begin(1, text, 0.0, None)
        return policy, [policy.step(tr, image, t) for t in (0.1, 0.2, 0.3, 0.4)]

    policy, ds = run('the red ball', black)     # the timeout runs from the first frame
    assert all(d.state != TrackState.TRACKING and d.box_xywh is None for d in ds)
    assert ds[0].candidate_xywh is not None and ds[0].candidate_score == 0.0
    assert policy.colour == 'red' and policy.colour_rejections == 4
    found = [e for d in ds for e in d.events if e.kind == EventKind.NOT_FOUND]
    assert len(found) == 1 and '4 matches lacked the colour red' in found[0].reason
    # the colour is there, no colour is named, or the check is off: acquired as before
    for text, image, share in (('the red ball', red, 0.2), ('the ball', black, 0.2),
                               ('the red ball', black, 0.0)):
        policy, ds = run(text, image, share)
        assert ds[-1].state == TrackState.TRACKING and policy.colour_rejections == 0


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
    cfg = StateMachineConfig(confirm_frames=1, trial_frames=1, grounding_timeout_s=0.25)

    def run(p, text='the ball', threshold=0.5):
        kinds = StubKinds(p)
        policy = RecoveryPolicy(build_recovery(RecoveryConfig(), D, D), cfg,
                                SearchConfig(kind_threshold=threshold), kinds)
        tr = FakeTracker()
        policy.begin(1, text, 0.0, None)
        return policy, kinds, [policy.step(tr, IMAGE, t) for t in (0.1, 0.2, 0.3, 0.4)]

    policy, kinds, ds = run(0.2)
    assert policy.kind == 'ball' and kinds.asked == ['ball'] * 4
    assert all(d.box_xywh is None for d in ds) and ds[0].candidate_score == 0.0
    found = [e for d in ds for e in d.events if e.kind == EventKind.NOT_FOUND]
    assert len(found) == 1 and '4 matches did not look like a ball' in found[0].reason
    assert 'colour' not in found[0].reason
    policy, kinds, ds = run(0.9)
    assert ds[-1].state == TrackState.TRACKING and policy.kind_rejections == 0
    assert len(kinds.asked) == 2             # on the match and its trial, not once held
    # a kind the classifier does not know, or the check off: never asked
    for text, threshold in (('the person', 0.5), ('the ball', 0.0)):
        policy, kinds, ds = run(0.2, text, threshold)
        assert ds[-1].state == TrackState.TRACKING and kinds.asked == []
    with pytest.raises(ConfigError, match='search.kind_threshold'):
        SearchConfig(kind_threshold=1.0)


def test_retemplate_encodes_the_refound_box():
    cfg = StateMachineConfig(confirm_frames=1, trial_frames=0, lost_after_frames=1,
                             search_timeout_s=100.0)
    policy = RecoveryPolicy(build_recovery(RecoveryConfig(), D, D), cfg,
                            SearchConfig(retemplate=True))
    tr = FakeTracker()
    image = np.zeros((240, 320, 3), np.uint8)
    policy.begin(1, 'the ball', 0.0, None)
    assert policy.step(tr, image, 0.1).state == TrackState.TRACKING
    tr.local_head = tr.global_head = flat_head()
    assert policy.step(tr, image, 0.2).state == TrackState.LOST
    tr.global_head = head((3, 2), (6, 7))
    d = policy.step(tr, image, 0.3)
    assert d.state == TrackState.REFOUND
    assert d.template_box_xywh is not None and d.template_box_xywh == d.box_xywh


def test_trial_tracks_the_match_with_its_template_before_acquiring():
    policy, tr, d = begun(StateMachineConfig(confirm_frames=1, trial_frames=1,
                                             search_timeout_s=100.0))
    assert tr.calls[-1][0] == 'global'
    # matched, not yet held: the match is encoded as the template and followed locally
    assert d.state == TrackState.GROUNDING and d.box_xywh is None and d.events == ()
    assert d.template_box_xywh == d.search_box_xywh == d.candidate_xywh
    assert d.clue == 'global'
    d2 = policy.step(tr, IMAGE, 0.2)
    assert tr.calls[-1] == ('local', d.candidate_xywh)
    assert d2.state == TrackState.TRACKING and [e.kind for e in d2.events] == [EventKind.ACQUIRED]
    assert d2.template_box_xywh is None          # encoded when the trial began
    assert d2.box_xywh == d2.search_box_xywh and d2.clue == 'local'


def test_failed_trial_goes_back_to_the_whole_frame():
    policy, tr, _ = begun(StateMachineConfig(confirm_frames=1, trial_frames=2,
                                             search_timeout_s=100.0),
                          SearchConfig(jump=True, verify_iou=0.5))
    tr.local_head = flat_head()                  # the match does not survive being tracked
    d = policy.step(tr, IMAGE, 0.2)
    # jump and verify belong to a held track: a trial frame runs the local step only
    assert [c[0] for c in tr.calls] == ['global', 'local']
    assert d.state == TrackState.GROUNDING and d.events == () and d.box_xywh is None
    assert d.search_box_xywh is None and d.template_box_xywh is None
    policy.step(tr, IMAGE, 0.3)
    assert tr.calls[-1][0] == 'global'


def test_policy_reports_the_trackers_grounding_box():
    # the Step's box, not the head's box mapped again: under geometry 'official' they differ
    cfg = StateMachineConfig(confirm_frames=1, trial_frames=0)
    policy = RecoveryPolicy(build_recovery(RecoveryConfig(), D, D), cfg)
    tr = FakeTracker()
    mapped = tr.global_step

    def global_step(image):
        s = mapped(image)
        s.box_xywh = (101.0, 42.0, 160.0, 190.0)   # the head says (48, 48, 160, 192)
        return s

    tr.global_step = global_step
    policy.begin(1, 'the ball', 0.0, None)
    d = policy.step(tr, np.zeros((240, 320, 3), np.uint8), 0.1)
    assert d.state == TrackState.TRACKING
    assert d.box_xywh == d.template_box_xywh == (101.0, 42.0, 160.0, 190.0)


def acquired_policy(search=SearchConfig()):
    """A policy (no switch: heatmap scores) holding the target after one grounded frame."""
    policy, tr, d = begun(StateMachineConfig(confirm_frames=1, trial_frames=0,
                                             lost_after_frames=2, search_timeout_s=100.0),
                          search)
    assert d.state == TrackState.TRACKING
    return policy, tr, d.search_box_xywh


def test_verify_keeps_a_weak_box_the_whole_frame_agrees_with():
    image = np.zeros((240, 320, 3), np.uint8)
    for grounded, kept in ((None, True), ((250.0, 200.0, 30.0, 30.0), False)):
        policy, tr, centre = acquired_policy(SearchConfig(verify_iou=0.5))
        tr.local_head = flat_head()
        d = policy.step(tr, image, 0.2)              # weak, but LOST would need a second one
        assert d.state == TrackState.TRACKING and ('global', None) not in tr.calls[1:]
        mapped = tr.global_step

        def global_step(image, box=grounded or d.box_xywh):
            s = mapped(image)
            s.box_xywh = box                          # the grounding box, on or off the local box
            return s

        tr.global_step = global_step
        tr.calls.clear()
        d = policy.step(tr, image, 0.25)             # the frame that would declare LOST
        assert tr.calls == [('local', centre), ('global', None)]
        assert d.state == (TrackState.TRACKING if kept else TrackState.LOST)
        assert d.score < 0.35                         # the weak score is reported as it is


def test_weak_frame_jumps_to_a_clearly_better_whole_frame_match():
    policy, tr, centre = acquired_policy(SearchConfig(jump=True))
    image = np.zeros((240, 320, 3), np.uint8)
    tr.local_head = flat_head()                       # the local tracker lost its grip...
    tr.global_head = head((3, 2), (6, 7), (0.6, 0.55, 0.3, 0.4))   # ...the whole frame matches
    tr.calls.clear()
    d = policy.step(tr, image, 0.2)
    assert tr.calls == [('local', centre), ('global', None)]
    # no LOST, no event: the track moves there; the template stays, the clue is the global one
    assert d.state == TrackState.TRACKING and d.events == ()
    assert d.search_box_xywh == d.box_xywh != centre and d.score > 0.9
    assert d.template_box_xywh is None and d.clue == 'global'
    # without jumps (the default) the same frame is only weak, and the whole frame not searched
    policy, tr, centre = acquired_policy()
    tr.local_head, tr.global_head = flat_head(), head((3, 2), (6, 7), (0.6, 0.55, 0.3, 0.4))
    tr.calls.clear()
    d = policy.step(tr, image, 0.2)
    assert tr.calls == [('local', centre)] and d.search_box_xywh is None and d.score < 0.35


def test_searching_refinds_at_the_last_held_box():
    policy, tr, centre = acquired_policy(SearchConfig(local=True))
    image = np.zeros((240, 320, 3), np.uint8)
    tr.local_head = tr.global_head = flat_head()
    for stamp in (0.2, 0.25):
        d = policy.step(tr, image, stamp)
    assert d.state == TrackState.LOST
    tr.local_head = head()                            # the target is back where it was held
    tr.calls.clear()
    d = policy.step(tr, image, 0.3)
    assert tr.calls == [('global', None), ('local', centre)]
    assert d.state == TrackState.REFOUND and d.events[0].kind == EventKind.REFOUND
    # found by the local tracker with its template: nothing to re-encode
    assert d.template_box_xywh is None and d.clue == 'local' and d.search_box_xywh == d.box_xywh
    # with search.local off (the default) only the whole frame is searched
    policy, tr, centre = acquired_policy()
    tr.local_head = tr.global_head = flat_head()
    for stamp in (0.2, 0.25):
        policy.step(tr, image, stamp)
    tr.local_head = head()
    tr.calls.clear()
    d = policy.step(tr, image, 0.3)
    assert tr.calls == [('global', None)] and d.state == TrackState.SEARCHING


def test_policy_with_given_box_sends_acquired_with_frame_stamp():
    pytest.importorskip('nl_tracker_ros.tracker')
    policy = RecoveryPolicy(build_recovery(RecoveryConfig(), D, D), StateMachineConfig())
    tr = FakeTracker()
    policy.begin(3, 'the cup', 1.0, (50.0, 60.0, 40.0, 40.0))
    d = policy.step(tr, np.zeros((240, 320, 3), np.uint8), 1.5)
    assert tr.calls == [('local', (50.0, 60.0, 40.0, 40.0))]
    acq = [e for e in d.events if e.kind == EventKind.ACQUIRED]
    assert len(acq) == 1 and acq[0].stamp == 1.5 and acq[0].track_id == 3
