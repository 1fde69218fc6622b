"""Tracker results and events -> nl_tracker_ros messages (one-to-one, nothing else)."""
from __future__ import annotations

import math

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from nl_tracker_ros.msg import TrackedTarget, TrackEvent
from nl_tracker_ros.track_types import TrackEvent as CoreEvent
from nl_tracker_ros.track_types import TrackResult


def stamp_to_sec(stamp: Time) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(t: float) -> Time:
    """Float seconds -> builtin_interfaces/Time (rounded to the nanosecond)."""
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _box_fields(box, score: float) -> tuple[bool, tuple[float, ...], float]:
    """(valid, (x, y, w, h), score) for a message's box fields; zeros without a finite box."""
    ok = box is not None and all(math.isfinite(v) for v in box)
    xywh = tuple(float(v) for v in box) if ok else (0.0, 0.0, 0.0, 0.0)
    return ok, xywh, float(score) if math.isfinite(score) else 0.0


def _set_box(msg, box, score: float) -> None:
    msg.has_box, (msg.x, msg.y, msg.width, msg.height), msg.score = _box_fields(box, score)


def target_msg(result: TrackResult, header: Header) -> TrackedTarget:
    """TrackedTarget for ``result``; ``header`` is the source image's header, copied as is."""
    msg = TrackedTarget(header=header, track_id=int(result.track_id), phrase=result.text,
                        state=int(result.state))
    _set_box(msg, result.box_xywh, result.score)
    (msg.has_candidate, (msg.candidate_x, msg.candidate_y, msg.candidate_width,
                         msg.candidate_height), msg.candidate_score) = \
        _box_fields(result.candidate_xywh, result.candidate_score)
    return msg


def event_msg(event: CoreEvent, phrase: str, frame_id: str) -> TrackEvent:
    """TrackEvent message; its stamp is the event's (the frame or command that caused it)."""
    msg = TrackEvent(header=Header(stamp=sec_to_stamp(event.stamp), frame_id=frame_id),
                     kind=int(event.kind), track_id=int(event.track_id), phrase=phrase,
                     reason=event.reason.splitlines()[0] if event.reason else '')
    _set_box(msg, event.box_xywh, event.score)
    return msg
