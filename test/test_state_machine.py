"""The lost/re-found state machine: pure transitions, no model."""
import ast
import dataclasses
import pathlib

import pytest

from nl_tracker_ros import state_machine as sm
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.track_types import EventKind, TrackState

CFG = sm.StateMachineConfig(accept_threshold=0.6, keep_threshold=0.4, lost_after_frames=3,
                            grounding_timeout_s=2.0, search_timeout_s=3.0,
                            gone_search_interval_s=1.0,
                            trial_frames=0)    # the trial has its own tests
BOX = (100.0, 80.0, 40.0, 60.0)
FPS = 10.0


def good(box=BOX, score=0.9):
    return sm.Evidence(score, box)


def weak(score=0.1, box=(300.0, 10.0, 20.0, 20.0)):
    return sm.Evidence(score, box)


class Run:
    """Feeds evidence frame by frame and records every state and event."""

    def __init__(self, cfg=CFG):
        self.cfg = cfg
        self.state, self.c = TrackState.IDLE, sm.Counters()
        self.t = 0.0
        self.events = []
        self.states = []

    def command(self, text, box=None):
        self.state, self.c, ev = sm.command(self.state, self.c, text, self.t, box)
        self.events.extend(ev)
        return ev

    def frame(self, evidence):
        self.t += 1.0 / FPS
        self.state, self.c, ev = sm.step(self.state, self.c, evidence, self.t, self.cfg)
        self.events.extend(ev)
        self.states.append(self.state)
        return ev

    def kinds(self):
        return [e.kind for e in self.events]

    def acquire(self):
        self.command('the person in the red jacket')
        for _ in range(1 + self.cfg.trial_frames):
            self.frame(good())
        assert self.state == TrackState.TRACKING


def test_idle_does_nothing_and_plans_nothing():
    r = Run()
    assert r.frame(good()) == ()
    assert r.state == TrackState.IDLE
    assert sm.plan(r.state, r.c, 0.0, CFG) == sm.Mode.NONE


def test_command_grounds_then_acquires_a_match():
    r = Run()
    ev = r.command('the red ball')
    assert [e.kind for e in ev] == [EventKind.COMMAND_ACCEPTED]
    assert r.state == TrackState.GROUNDING and r.c.track_id == 1
    assert sm.plan(r.state, r.c, r.t, CFG) == sm.Mode.GLOBAL
    assert r.frame(good(score=0.55)) == ()     # below accept_threshold: no match
    assert r.state == TrackState.GROUNDING
    ev = r.frame(good((102.0, 81.0, 40.0, 60.0)))
    assert [e.kind for e in ev] == [EventKind.ACQUIRED]
    assert r.state == TrackState.TRACKING
    assert ev[0].box_xywh == (102.0, 81.0, 40.0, 60.0)
    assert ev[0].stamp == pytest.approx(r.t) and ev[0].reason
    assert sm.plan(r.state, r.c, r.t, CFG) == sm.Mode.LOCAL


def test_one_weak_frame_does_not_flap():
    r = Run()
    r.acquire()
    for _ in range(5):
        r.frame(good())
        r.frame(weak())
        r.frame(weak())
    assert set(r.states[2:]) == {TrackState.TRACKING}
    assert EventKind.LOST not in r.kinds()


def test_lost_after_n_weak_frames_with_last_confident_box():
    r = Run()
    r.acquire()
    r.frame(good((110.0, 80.0, 40.0, 60.0)))
    r.frame(weak())
    r.frame(weak())
    ev = r.frame(weak(score=0.2))
    assert [e.kind for e in ev] == [EventKind.LOST]
    assert r.state == TrackState.LOST
    assert ev[0].box_xywh == (110.0, 80.0, 40.0, 60.0)   # not the weak frame's box
    assert '0.20' in ev[0].reason
    assert sm.plan(r.state, r.c, r.t, CFG) == sm.Mode.GLOBAL


def test_search_centre_does_not_follow_weak_or_lost_frames():
    r = Run()
    r.acquire()
    held = r.c.box_xywh
    r.frame(weak())
    assert r.c.box_xywh == held
    r.frame(weak())
    r.frame(weak())
    r.frame(weak(score=0.55))          # above keep but below accept: no re-find while lost
    assert r.state == TrackState.SEARCHING and r.c.box_xywh == held


def test_refound_after_a_match_then_tracking():
    r = Run()
    r.acquire()
    for _ in range(3):
        r.frame(weak())
    r.frame(sm.Evidence(0.0, None))
    assert r.state == TrackState.SEARCHING
    new = (400.0, 300.0, 40.0, 60.0)
    ev = r.frame(good(new))
    assert [e.kind for e in ev] == [EventKind.REFOUND]
    assert r.state == TrackState.REFOUND and r.c.box_xywh == new
    assert ev[0].box_xywh == new and ev[0].score == pytest.approx(0.9)
    assert sm.plan(r.state, r.c, r.t, CFG) == sm.Mode.LOCAL
    r.frame(good(new))
    assert r.state == TrackState.TRACKING


def test_search_timeout_reports_not_found_once_then_gone():
    r = Run()
    r.acquire()
    for _ in range(3):
        r.frame(weak())
    lost_at = r.t
    while r.t - lost_at < CFG.search_timeout_s - 1e-6:
        r.frame(weak())
        if r.state == TrackState.GONE:
            break
    assert r.state == TrackState.GONE
    assert r.t - lost_at == pytest.approx(CFG.search_timeout_s, abs=1.01 / FPS)
    nf = [e for e in r.events if e.kind == EventKind.NOT_FOUND]
    assert len(nf) == 1 and 'not found' in nf[0].reason
    for _ in range(30):
        r.frame(weak())
    assert [e.kind for e in r.events].count(EventKind.NOT_FOUND) == 1


def test_gone_searches_at_low_rate_and_can_refind():
    r = Run()
    r.acquire()
    for _ in range(3):
        r.frame(weak())
    for _ in range(int(CFG.search_timeout_s * FPS) + 1):
        r.frame(weak())
    assert r.state == TrackState.GONE
    modes = []
    for _ in range(20):
        mode = sm.plan(r.state, r.c, r.t + 1.0 / FPS, CFG)
        modes.append(mode)
        r.frame(weak() if mode == sm.Mode.GLOBAL else sm.Evidence(ran=False))
    assert modes.count(sm.Mode.GLOBAL) in (2, 3)          # about once a second over 2 s
    assert sm.Mode.LOCAL not in modes
    for _ in range(40):
        if sm.plan(r.state, r.c, r.t + 1.0 / FPS, CFG) == sm.Mode.GLOBAL:
            r.frame(good())
        else:
            r.frame(sm.Evidence(ran=False))
        if r.state == TrackState.REFOUND:
            break
    assert r.state == TrackState.REFOUND
    assert r.kinds()[-1] == EventKind.REFOUND


def test_description_matching_nothing_ends_in_not_found_without_a_box():
    r = Run()
    r.command('a purple giraffe on the roof')
    published = []
    for i in range(60):
        ev = sm.Evidence(0.05 + 0.5 * (i % 2), (10.0 * i, 5.0, 30.0, 30.0))  # flickering junk
        r.frame(ev)
        published.append(sm.reported(r.state, ev))
    assert r.kinds() == [EventKind.COMMAND_ACCEPTED, EventKind.NOT_FOUND]
    assert r.state == TrackState.GONE
    assert all(box is None for box, _ in published)
    nf = r.events[-1]
    assert nf.stamp == pytest.approx(CFG.grounding_timeout_s, abs=1.01 / FPS)


TRIAL = dataclasses.replace(CFG, trial_frames=2)


def test_a_match_is_tracked_on_trial_before_acquired():
    r = Run(TRIAL)
    r.command('the red ball')
    assert r.frame(good()) == ()                       # matched: now on trial
    assert r.state == TrackState.GROUNDING and r.c.trial == 2
    assert sm.plan(r.state, r.c, r.t, TRIAL) == sm.Mode.LOCAL
    assert sm.centre(r.c) == BOX                       # the trial follows the match
    moved = (104.0, 82.0, 40.0, 60.0)
    assert r.frame(good(moved, score=0.45)) == ()      # above keep, below accept: passes
    assert sm.centre(r.c) == moved and r.c.box_xywh is None
    ev = r.frame(good(moved, score=0.5))
    assert [e.kind for e in ev] == [EventKind.ACQUIRED]
    assert r.state == TrackState.TRACKING and ev[0].box_xywh == moved
    assert 'tracked for 2' in ev[0].reason
    assert sm.reported(TrackState.GROUNDING, good()) == (None, 0.0)


def test_look_alike_failing_its_trial_is_never_held_and_timeout_runs_on():
    r = Run(TRIAL)
    r.command('the purple star')
    published = []
    while r.state != TrackState.GONE:
        mode = sm.plan(r.state, r.c, r.t, TRIAL)
        # the whole frame keeps finding the look-alike; tracked, it scores weak
        ev = good() if mode == sm.Mode.GLOBAL else weak(box=BOX)
        r.frame(ev)
        published.append(sm.reported(r.state, ev))
    assert r.kinds() == [EventKind.COMMAND_ACCEPTED, EventKind.NOT_FOUND]
    assert all(box is None for box, _ in published)
    # a frame that begins a trial lets the trial decide: the timeout may show a frame later
    assert r.t == pytest.approx(TRIAL.grounding_timeout_s, abs=2.01 / FPS)


def test_refind_on_trial_keeps_the_last_held_box_until_it_passes():
    r = Run(TRIAL)
    r.acquire()
    for _ in range(4):
        r.frame(weak())
    assert r.state == TrackState.SEARCHING
    new = (400.0, 300.0, 40.0, 60.0)
    r.frame(good(new))
    assert r.state == TrackState.SEARCHING and sm.centre(r.c) == new
    assert r.c.box_xywh == BOX                        # the search centre of the held track
    r.frame(weak(box=new))                            # failed: back to the whole frame
    assert r.c.trial == 0 and sm.centre(r.c) == BOX
    assert sm.plan(r.state, r.c, r.t, TRIAL) == sm.Mode.GLOBAL
    r.frame(good(new))
    r.frame(good(new))
    ev = r.frame(good(new))
    assert [e.kind for e in ev] == [EventKind.REFOUND]
    assert r.c.box_xywh == new


def test_found_while_gone_after_grounding_counts_as_acquired():
    r = Run()
    r.command('the red ball')
    for _ in range(int(CFG.grounding_timeout_s * FPS) + 1):
        r.frame(weak())
    assert r.state == TrackState.GONE
    for _ in range(40):
        mode = sm.plan(r.state, r.c, r.t + 1.0 / FPS, CFG)
        r.frame(good() if mode == sm.Mode.GLOBAL else sm.Evidence(ran=False))
        if r.state == TrackState.TRACKING:
            break
    assert r.kinds()[-1] == EventKind.ACQUIRED and r.state == TrackState.TRACKING


def test_new_command_mid_search_restarts_grounding_with_new_id():
    r = Run()
    r.acquire()
    for _ in range(5):
        r.frame(weak())
    assert r.state == TrackState.SEARCHING
    old = r.c.track_id
    ev = r.command('the dog')
    assert r.state == TrackState.GROUNDING and r.c.track_id == old + 1
    assert ev[0].track_id == old + 1 and ev[0].kind == EventKind.COMMAND_ACCEPTED
    assert r.c.box_xywh is None and r.c.weak == 0 and r.c.candidate is None
    r.frame(weak())
    assert r.c.phase_start == pytest.approx(r.t)   # timeout counts from the new command's
    assert r.state == TrackState.GROUNDING          # first frame, not the old search's start


def test_timeouts_run_on_the_frames_clock_whatever_the_command_stamp():
    # A command stamped by a node clock that is not the camera's (sim time not received
    # yet: 0) must not time out on the first frame, stamped 1.7e9.
    r = Run()
    r.command('the red ball')
    r.t = 1.7e9
    for _ in range(int(CFG.grounding_timeout_s * FPS) - 1):
        r.frame(weak())
    assert r.state == TrackState.GROUNDING
    for _ in range(3):
        r.frame(weak())
    assert r.state == TrackState.GONE
    nf = r.events[-1]
    assert nf.kind == EventKind.NOT_FOUND
    first = 1.7e9 + 1.0 / FPS
    assert nf.stamp - first == pytest.approx(CFG.grounding_timeout_s, abs=1.01 / FPS)
    r = Run()                    # a looped bag: stamps jump back, the phase restarts there
    r.acquire()
    for _ in range(5):
        r.frame(weak())
    assert r.state == TrackState.SEARCHING
    r.t = -100.0
    r.frame(weak())
    assert r.state == TrackState.SEARCHING and r.c.phase_start == pytest.approx(r.t)


def test_command_with_box_starts_tracking_and_empty_command_stops():
    r = Run()
    ev = r.command('the cup', BOX)
    assert [e.kind for e in ev] == [EventKind.COMMAND_ACCEPTED, EventKind.ACQUIRED]
    assert r.state == TrackState.TRACKING and r.c.box_xywh == BOX
    tid = r.c.track_id
    ev = r.command('   ')
    assert [e.kind for e in ev] == [EventKind.STOPPED]
    assert ev[0].track_id == tid and ev[0].box_xywh == BOX
    assert ev[0].reason == 'empty command: tracking stopped'
    assert r.state == TrackState.IDLE
    ev = r.command('')                               # stopping while idle: says so
    assert [e.kind for e in ev] == [EventKind.STOPPED]
    assert ev[0].reason == 'empty command: nothing was being tracked'
    assert r.command('the cup').__len__() == 1 and r.c.track_id == tid + 1


def test_reported_box_only_while_held():
    ev = good()
    assert sm.reported(TrackState.TRACKING, ev) == (BOX, 0.9)
    assert sm.reported(TrackState.REFOUND, ev) == (BOX, 0.9)
    for s in (TrackState.GROUNDING, TrackState.LOST, TrackState.SEARCHING, TrackState.GONE,
              TrackState.IDLE):
        assert sm.reported(s, ev) == (None, 0.0)


def test_frames_without_a_model_step_do_not_count():
    r = Run()
    r.acquire()
    r.frame(weak())
    r.frame(weak())
    for _ in range(10):
        r.frame(sm.Evidence(ran=False))
    assert r.state == TrackState.TRACKING and r.c.weak == 2


def test_config_rejects_inverted_hysteresis():
    with pytest.raises(ConfigError):
        sm.StateMachineConfig(accept_threshold=0.3, keep_threshold=0.5)
    with pytest.raises(ConfigError, match='accept_threshold: expected 0 .. 1, got 1.5'):
        sm.StateMachineConfig(accept_threshold=1.5)
    with pytest.raises(ConfigError):
        sm.StateMachineConfig(lost_after_frames=0)
    with pytest.raises(ConfigError, match='trial_frames'):
        sm.StateMachineConfig(trial_frames=-1)


def test_state_machine_imports_no_model_and_no_ros():
    src = pathlib.Path(sm.__file__).read_text()
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    assert not any(n.startswith(('torch', 'rclpy')) or n.endswith('_msgs') for n in names)
