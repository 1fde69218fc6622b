"""The values that flow through the tracker: states, events, model steps and per-frame results.

These are plain frozen dataclasses so that the node, the offline evaluator and tests all see the
same thing; the ROS layer converts them to messages one-to-one.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any, Literal


class TrackState(enum.IntEnum):
    """Where the tracker is; the integer values are the ones carried in messages."""

    IDLE = 0        # no command: nothing to track
    GROUNDING = 1   # a command arrived; looking for the described target in the frame
    TRACKING = 2    # the target is held by the local tracker
    LOST = 3        # the local tracker no longer holds the target (hysteresis passed)
    SEARCHING = 4   # global retrieval over the whole frame is running
    REFOUND = 5     # retrieval found the target again; back to tracking on the next frame
    GONE = 6        # searched longer than the limit; reported once, search continues at low rate


# The states in which the target is held: a box is published and a controller may follow it.
HOLDING_STATES = (TrackState.TRACKING, TrackState.REFOUND)


class EventKind(enum.IntEnum):
    """What happened; the integer values are the ones carried in messages."""

    COMMAND_ACCEPTED = 0
    COMMAND_REJECTED = 1
    ACQUIRED = 2
    LOST = 3
    REFOUND = 4
    NOT_FOUND = 5   # searched for longer than the limit without finding the target
    STOPPED = 6     # an empty command ended the track
    ERROR = 7


@dataclasses.dataclass(frozen=True)
class TrackEvent:
    """One transition worth telling a robot about."""

    kind: EventKind
    stamp: float                    # seconds, the stamp of the frame that caused it
    track_id: int
    reason: str = ''
    box_xywh: tuple[float, float, float, float] | None = None
    score: float = 0.0


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
    """One model step on one frame: its box in frame pixels plus what the model produced."""

    kind: Literal['local', 'global']
    box_xywh: tuple[float, float, float, float]   # clipped to the frame
    score: float                   # heatmap confidence, 0..1 (sqrt of the two corner peaks)
    head: Any                      # the model's HeadOutput
    geometry: Any                  # preprocessing.CropGeometry the head output refers to


@dataclasses.dataclass(frozen=True)
class TrackResult:
    """The tracker's answer for one frame."""

    stamp: float
    track_id: int
    text: str
    state: TrackState
    box_xywh: tuple[float, float, float, float] | None  # pixels of the input frame; None if none
    score: float                                          # confidence of the box, 0..1
    events: tuple[TrackEvent, ...] = ()
    timing_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    # While the target is not held (GROUNDING, LOST, SEARCHING, GONE): the frame's best match,
    # unconfirmed, for displays and benchmarks, never for a controller to follow; None while
    # held or when no model step ran.
    candidate_xywh: tuple[float, float, float, float] | None = None
    candidate_score: float = 0.0

    @property
    def estimate_xywh(self) -> tuple[float, float, float, float] | None:
        """The tracker's best box for the frame, held or not: what overlap benchmarks score."""
        return self.box_xywh if self.box_xywh is not None else self.candidate_xywh
