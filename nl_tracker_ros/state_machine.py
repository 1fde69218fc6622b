"""The tracker's lost/re-found state machine: pure functions, no model, no ROS.

States are :class:`nl_tracker_ros.track_types.TrackState`. Everything the machine remembers lives
in a frozen :class:`Counters`; each frame the tracker hands in one :class:`Evidence` (the score and
box of whatever ran this frame) and gets back ``(state, counters, events)``::

    IDLE --command--> GROUNDING --match--> TRACKING --weak x N--> LOST --> SEARCHING
                          |                  ^   ^                           |  |
                          | timeout          |   +------- REFOUND <--match---+  | timeout
                          v                  |                                  v
                         GONE ---------------+--(match: ACQUIRED or REFOUND)-- GONE

- Hysteresis: acquiring or re-finding needs a whole-frame match of ``accept_threshold``, then
  ``trial_frames`` local tracking frames of the match, none weak (a trial), before ACQUIRED or
  REFOUND. A look-alike that the whole-frame search accepts often scores weak once tracked,
  and then fails its trial without ever being published as held. Once tracking, only
  ``lost_after_frames`` consecutive frames below the lower ``keep_threshold`` declare the target
  lost: one weak frame never flaps the state.
- The search centre (``Counters.box_xywh``) moves only on confident frames, never while lost.
- Searching longer than ``search_timeout_s`` (or grounding longer than ``grounding_timeout_s``)
  emits NOT_FOUND once and goes to GONE, where the search goes on at ``gone_search_interval_s``.
- A new command restarts at GROUNDING with a new track id (or TRACKING when a box is given); an
  empty command stops (IDLE, STOPPED). Track ids, states and every event, the command's own
  included, come from here, whether the lost/re-found handling is on or off (off: a
  configuration that acquires the first grounding and is never weak).

Transitions that have an :class:`EventKind` emit it with the frame stamp, a one-line reason and the
box. LOST -> SEARCHING and REFOUND -> TRACKING follow automatically on the next frame and emit no
event (there is no event kind for them; the state rides on every TrackResult).
"""
from __future__ import annotations

import dataclasses
import enum
import math

from nl_tracker_ros.config import check_ranges, param
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.track_types import HOLDING_STATES, EventKind, TrackEvent, TrackState

Box = tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class StateMachineConfig:
    """Thresholds of the state machine; scores are 0..1 (see Recovery for how they are made)."""

    accept_threshold: float = param(
        0.5, 'score a whole-frame match needs to begin its trial (acquire or re-find)', (0, 1))
    keep_threshold: float = param(
        0.3, 'below this score a tracking frame is weak (<= accept_threshold)', (0, 1))
    lost_after_frames: int = param(3, 'consecutive weak frames before LOST', (1, 1000))
    trial_frames: int = param(
        2, 'frames a match is tracked, none weak, before ACQUIRED / REFOUND (0: at once)',
        (0, 1000))
    grounding_timeout_s: float = param(
        3.0, 'no match this many seconds after a command: NOT_FOUND', (0, 3600))
    search_timeout_s: float = param(
        5.0, 'no re-find this many seconds after LOST: NOT_FOUND', (0, 3600))
    gone_search_interval_s: float = param(
        1.0, 'after NOT_FOUND, search the whole frame this often (seconds)', (0, 3600))

    def __post_init__(self):
        check_ranges(self, 'recovery.states')
        if not self.keep_threshold <= self.accept_threshold:
            raise ConfigError('recovery.states: expected keep_threshold <= accept_threshold, '
                              f'got {self.keep_threshold} and {self.accept_threshold}')


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What one frame says about the target.

    ``score`` is 0..1 (how sure the box is the described target); ``box_xywh`` is in frame pixels
    or None when nothing was proposed; ``ran`` is False when no model step ran this frame (e.g.
    a throttled search while GONE), so that the frame neither counts as a match nor as a miss.
    """

    score: float = 0.0
    box_xywh: Box | None = None
    ran: bool = True


@dataclasses.dataclass(frozen=True)
class Counters:
    """Everything the machine remembers between frames."""

    track_id: int = 0
    text: str = ''
    weak: int = 0                     # consecutive weak frames while tracking
    candidate: Box | None = None      # box of the match on trial
    trial: int = 0                    # local frames the match must still pass (0: no trial)
    # frame stamp when grounding or searching began; NaN until the first frame after a
    # command, so timeouts run on the frames' clock even when the command's differs
    phase_start: float = math.nan
    last_search: float = -math.inf    # stamp of the last global search while GONE
    box_xywh: Box | None = None       # last confident box: the search centre
    acquired: bool = False            # the target was held at least once on this track


class Mode(enum.IntEnum):
    """Which model step the tracker should run on the next frame."""

    NONE = 0     # nothing (idle, or a throttled search while GONE)
    GLOBAL = 1   # grounding / target-specific retrieval on the whole frame
    LOCAL = 2    # the local tracker on the search crop around Counters.box_xywh


def plan(state: TrackState, counters: Counters, stamp: float,
         config: StateMachineConfig) -> Mode:
    """Return the model step to run on the frame with ``stamp``."""
    if state == TrackState.IDLE:
        return Mode.NONE
    if state in HOLDING_STATES or counters.trial:
        return Mode.LOCAL
    # 1 us slack: stamps summed from frame periods fall a hair short of the interval
    wait = config.gone_search_interval_s - 1e-6
    if state == TrackState.GONE and stamp - counters.last_search < wait:
        return Mode.NONE
    return Mode.GLOBAL


def command(state: TrackState, counters: Counters, text: str, stamp: float,
            box_xywh: Box | None = None, note: str = '', stopped: str = 'empty command'
            ) -> tuple[TrackState, Counters, tuple[TrackEvent, ...]]:
    """Start a new track for ``text`` (empty or whitespace = stop); return the new state.

    Every non-empty command gets a new track id. With ``box_xywh`` the target is given, so the
    track starts in TRACKING (ACQUIRED) without grounding. ``note`` is added to the
    COMMAND_ACCEPTED reason; ``stopped`` names what stopped the track.
    """
    text = text.strip()
    if not text:
        what = 'tracking stopped' if state != TrackState.IDLE else 'nothing was being tracked'
        events = (TrackEvent(EventKind.STOPPED, stamp, counters.track_id, f'{stopped}: {what}',
                             counters.box_xywh),)
        return TrackState.IDLE, Counters(track_id=counters.track_id), events
    tid = counters.track_id + 1
    new = Counters(track_id=tid, text=text)
    reason = f'tracking "{text}"{note}' + (' from the given box' if box_xywh is not None else '')
    events = [TrackEvent(EventKind.COMMAND_ACCEPTED, stamp, tid, reason,
                         None if box_xywh is None else tuple(float(v) for v in box_xywh))]
    if box_xywh is not None:
        box = tuple(float(v) for v in box_xywh)
        new = dataclasses.replace(new, box_xywh=box, acquired=True)
        events.append(TrackEvent(EventKind.ACQUIRED, stamp, tid, 'box given with the command',
                                 box, 1.0))
        return TrackState.TRACKING, new, tuple(events)
    return TrackState.GROUNDING, new, tuple(events)


def rejected(counters: Counters, stamp: float, reason: str) -> TrackEvent:
    """The COMMAND_REJECTED event for a command or init box refused with ``reason``; the
    current track, if any, goes on."""
    return TrackEvent(EventKind.COMMAND_REJECTED, stamp, counters.track_id, reason)


def step(state: TrackState, counters: Counters, evidence: Evidence, stamp: float,
         config: StateMachineConfig) -> tuple[TrackState, Counters, tuple[TrackEvent, ...]]:
    """Advance one frame: ``(state, counters, evidence) -> (state, counters, events)``."""
    if state == TrackState.IDLE:
        return state, counters, ()
    if state in HOLDING_STATES:
        return _track(counters, evidence, stamp, config)
    return _search(state, counters, evidence, stamp, config)


def centre(counters: Counters) -> Box | None:
    """Where the next local step looks: the match on trial, else the last held box."""
    return counters.candidate if counters.trial else counters.box_xywh


def reported(state: TrackState, evidence: Evidence) -> tuple[Box | None, float]:
    """The (box, score) to publish for a frame that ended in ``state``.

    A box is published only while the target is held (TRACKING, REFOUND); a weak tracking frame
    keeps its box with its low score so a robot can slow down before LOST is declared.
    """
    if state in HOLDING_STATES and evidence.box_xywh is not None:
        return tuple(float(v) for v in evidence.box_xywh), float(evidence.score)
    return None, 0.0


def _track(c: Counters, ev: Evidence, stamp: float, cfg: StateMachineConfig):
    if not ev.ran:
        return TrackState.TRACKING, c, ()
    if ev.box_xywh is not None and ev.score >= cfg.keep_threshold:
        box = tuple(float(v) for v in ev.box_xywh)
        return TrackState.TRACKING, dataclasses.replace(c, weak=0, box_xywh=box), ()
    weak = c.weak + 1
    if weak < cfg.lost_after_frames:
        return TrackState.TRACKING, dataclasses.replace(c, weak=weak), ()
    reason = (f'score {ev.score:.2f} below {cfg.keep_threshold:.2f} '
              f'for {weak} frames')
    event = TrackEvent(EventKind.LOST, stamp, c.track_id, reason, c.box_xywh, float(ev.score))
    new = dataclasses.replace(c, weak=0, candidate=None, phase_start=stamp)
    return TrackState.LOST, new, (event,)


def _search(state: TrackState, c: Counters, ev: Evidence, stamp: float,
            cfg: StateMachineConfig):
    if math.isnan(c.phase_start) or stamp < c.phase_start:
        # the first frame of the phase, or the frames' clock went back (a looped bag)
        c = dataclasses.replace(c, phase_start=stamp)
    if state == TrackState.GONE and ev.ran:
        c = dataclasses.replace(c, last_search=stamp)
    if state == TrackState.LOST:
        state = TrackState.SEARCHING
    if c.trial:
        return _trial(state, c, ev, stamp, cfg)
    if ev.ran and ev.box_xywh is not None and ev.score >= cfg.accept_threshold:
        box = tuple(float(v) for v in ev.box_xywh)
        if not cfg.trial_frames:
            return _found(c, box, ev.score, stamp)
        return state, dataclasses.replace(c, candidate=box, trial=cfg.trial_frames), ()
    return _timeout(state, c, stamp, cfg)


def _trial(state: TrackState, c: Counters, ev: Evidence, stamp: float,
           cfg: StateMachineConfig):
    """A confirmed match is tracked locally; one weak frame sends it back to the search,
    whose timeout kept running."""
    if not ev.ran:
        return state, c, ()
    if ev.box_xywh is None or ev.score < cfg.keep_threshold:
        return _timeout(state, dataclasses.replace(c, candidate=None, trial=0), stamp, cfg)
    box = tuple(float(v) for v in ev.box_xywh)
    if c.trial > 1:
        return state, dataclasses.replace(c, candidate=box, trial=c.trial - 1), ()
    return _found(c, box, ev.score, stamp, cfg.trial_frames)


def _timeout(state: TrackState, c: Counters, stamp: float, cfg: StateMachineConfig):
    if state == TrackState.GONE:
        return state, c, ()
    grounding = state == TrackState.GROUNDING
    limit = cfg.grounding_timeout_s if grounding else cfg.search_timeout_s
    elapsed = stamp - c.phase_start
    if elapsed < limit:
        return state, c, ()
    what = 'matched' if grounding else 're-found'
    reason = f'target not found: "{c.text}" not {what} within {elapsed:.1f} s'
    event = TrackEvent(EventKind.NOT_FOUND, stamp, c.track_id, reason, c.box_xywh, 0.0)
    return TrackState.GONE, dataclasses.replace(c, last_search=stamp), (event,)


def _found(c: Counters, box: Box, score: float, stamp: float, tracked: int = 0):
    kind = EventKind.REFOUND if c.acquired else EventKind.ACQUIRED
    state = TrackState.REFOUND if c.acquired else TrackState.TRACKING
    reason = 'matched on the whole frame'
    if tracked:
        reason += f', then tracked for {tracked} frame' + 's' * (tracked > 1)
    reason += f' (score {score:.2f})'
    event = TrackEvent(kind, stamp, c.track_id, reason, box, float(score))
    new = dataclasses.replace(c, weak=0, candidate=None, trial=0, box_xywh=box,
                              acquired=True, last_search=-math.inf)
    return state, new, (event,)
