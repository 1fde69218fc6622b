"""The recovery policy inside the real Tracker (tiny random-weight model, CPU)."""
import threading

import numpy as np
import pytest
import torch

from nl_tracker_ros.model.config import get_preset
from nl_tracker_ros.model.identity import RANDOM, ModelIdentity
from nl_tracker_ros.recovery.config import PLAIN_STATES, MethodConfig, RecoveryConfig
from nl_tracker_ros.recovery.policy import Policy, build_policy
from nl_tracker_ros.recovery.switch import build_recovery
from nl_tracker_ros.state_machine import StateMachineConfig
from nl_tracker_ros.track_types import HOLDING_STATES as HELD, EventKind, TrackState

trk = pytest.importorskip('nl_tracker_ros.tracker')


@pytest.fixture(scope='module')
def tracker():
    torch.manual_seed(0)
    tracker = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny', random_weights=True),
                                'cpu')
    states = StateMachineConfig(grounding_timeout_s=0.3, search_timeout_s=0.3)
    dim = get_preset('jointnlt-tiny').dim
    tracker.policy = Policy(states, build_recovery(MethodConfig(), dim, dim, random_init=True))
    return tracker


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(n)]


def test_recovery_off_is_the_same_policy_configured_never_to_lose():
    tiny = ModelIdentity('jointnlt-tiny', RANDOM)
    plain = build_policy(RecoveryConfig(enabled=False), tiny, 8)
    assert plain.states == PLAIN_STATES and plain.scorer is None
    assert PLAIN_STATES.accept_threshold == PLAIN_STATES.keep_threshold == 0.0
    on = build_policy(RecoveryConfig(), tiny, 8)
    assert on.states == StateMachineConfig() and on.scorer is not None
    assert not on.scorer.uses_switch      # nothing fitted for the tiny model: heatmaps only
    assert on.notes and on.notes[0].startswith('recovery: no retrieval switch fitted for '
                                               'jointnlt-tiny random weights')


def test_unmatched_description_searches_then_reports_not_found(tracker):
    tracker.set_command('a purple giraffe on the roof', 0.0)
    results = [tracker.update(im, 0.1 * (i + 1)) for i, im in enumerate(frames(6))]
    kinds = [e.kind for r in results for e in r.events]
    assert kinds == [EventKind.NOT_FOUND]        # random weights: nothing ever matches
    assert results[-1].state == TrackState.GONE
    assert all(r.box_xywh is None for r in results)
    # every searching frame still says where its best (rejected) match was, as a candidate
    searched = [r for r in results if r.state == TrackState.GROUNDING]
    assert searched and all(r.candidate_xywh is not None and r.estimate_xywh == r.candidate_xywh
                            for r in searched)
    nf = [e for r in results for e in r.events][0]
    assert 'not found' in nf.reason and nf.track_id == tracker.track_id


def test_given_box_is_tracked_then_lost_without_moving_the_search_centre(tracker):
    box = (30.0, 20.0, 40.0, 30.0)
    tracker.set_command('the cup', 0.0, box_xywh=box, image_size=(128, 96))
    results = [tracker.update(im, 0.1 * (i + 1)) for i, im in enumerate(frames(5, 1))]
    assert results[0].events[0].kind == EventKind.ACQUIRED
    assert results[0].events[0].box_xywh == box
    lost = [r for r in results if any(e.kind == EventKind.LOST for e in r.events)]
    assert lost and lost[0].events[0].box_xywh == box   # the last confident box: the given one
    assert tracker.policy.counters.box_xywh == box
    for r in results:
        assert (r.box_xywh is None) == (r.state not in HELD)
        assert r.candidate_xywh is None or r.state not in HELD


def test_switching_commands_every_frame_leaks_no_threads_or_state(tracker):
    ims = frames(3, 2)
    tracker.set_command('warm up', 0.0)
    tracker.update(ims[0], 0.05)
    threads = threading.active_count()
    ids = []
    for i in range(20):
        ev = tracker.set_command(f'object number {i}', 0.1 * i)
        ids.append(ev[0].track_id)
        r = tracker.update(ims[i % 3], 0.1 * i + 0.05)
        assert r.track_id == ids[-1] and r.state in (TrackState.GROUNDING, TrackState.TRACKING)
    assert ids == list(range(ids[0], ids[0] + 20))
    assert threading.active_count() == threads
    gpo = tracker.policy.scorer.switch.gpo_t
    assert len(gpo._cache) <= 65                         # bounded cache
    ev = tracker.set_command('', 3.0)
    assert [e.kind for e in ev] == [EventKind.STOPPED]
    assert tracker.state == TrackState.IDLE


@pytest.mark.parametrize('words', ['colour-kind', 'kind'])
def test_benchmark_descriptions_fit_no_object_of_the_scene(words):
    from nl_tracker_ros.benchmarks.not_found import unmatched_description
    from nl_tracker_ros.colours import named_colour
    from nl_tracker_ros.scenes import get_mix, plan_scene
    rng = np.random.default_rng(0)
    for i in range(6):
        plan = plan_scene(get_mix('heldout').sample(np.random.default_rng([10000, i, 0]), 640,
                                                    480, 30), 10000, i)
        text = unmatched_description(plan, rng, words)
        objects = [s.spec for s in (plan.target_seen, *plan.seen)]
        kind, colour = text.split()[-1], named_colour(text)
        assert (colour is None) == (words == 'kind'), text
        assert not any(o.kind == kind and (colour is None or o.colour == colour)
                       for o in objects), text
