"""Offline running: a tracker over the frames of a sequence, every answer kept.

Any object with the Tracker contract works (``reset()``, ``set_command(text, stamp, box_xywh)``,
``update(image, stamp) -> TrackResult``); nothing here imports ROS or the model. A sequence is any
object shaped like :class:`nl_tracker_ros.inputs.Sequence` (``name``, ``text``, ``boxes_xywh``,
``absent``, ``len()``, ``load_frame(i)``; optional ``dataset`` and ``stamps``), so bag readers can
feed the same runner.

Every frame is accounted for: it gets the tracker's answer, or it is dropped with a reason (an
unreadable frame, an input the tracker rejected, a rejected command). ``results`` writes a run to
files and reads it back, ``scoring`` scores it.

The box of a frame is the tracker's estimate (``TrackResult.estimate_xywh``): the held box, or
while the target is not held the unconfirmed candidate with its score, as long-term trackers
give a box and a confidence on every frame. Whether the box was a claim that the target is
there comes from the state (TRACKING or REFOUND), which the lost/re-found and absent-aware
scores use.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
import time
from typing import Any, Callable, Iterable, Literal

import numpy as np

from nl_tracker_ros.errors import ConfigError, InputError, TrackerError
from nl_tracker_ros.evaluation import metrics
from nl_tracker_ros.track_types import EventKind, TrackEvent

NO_STATE = -1   # state code of a dropped frame


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How sequences are run and scored."""

    init: Literal['nl', 'nl+box'] = 'nl'    # language only, or language plus the frame-1 box
    # see nl_tracker_ros.evaluation.metrics
    convention: Literal['pytracking', 'tnl2k', 'absent-aware'] = 'pytracking'
    fps: float = 30.0                # stamps i / fps for sequences without their own stamps
    event_tolerance: int = 5         # frames a LOST event may precede the disappearance
    loss_within: int = 5             # a disappearance counts as reported within N frames
    reacquire_within: int = 10       # a reappearance counts as held again within N frames
    prefetch: int = 4                # frames decoded ahead in a thread (0: decode inline)

    def __post_init__(self):
        if self.init not in ('nl', 'nl+box'):
            raise ConfigError(f"init: expected 'nl' or 'nl+box', got {self.init!r}")
        if self.convention not in metrics.CONVENTIONS:
            raise ConfigError(f'convention: expected one of {list(metrics.CONVENTIONS)}, '
                              f'got {self.convention!r}')
        if not self.fps > 0:
            raise ConfigError(f'fps: expected a positive number, got {self.fps}')


@dataclasses.dataclass(eq=False)
class SequenceRun:
    """What a tracker answered on every frame of one sequence."""

    name: str
    dataset: str
    text: str
    gt_xywh: np.ndarray           # (N, 4) NaN where unknown
    gt_absent: np.ndarray         # (N,) bool
    boxes_xywh: np.ndarray        # (N, 4) estimates; NaN where no box or never saw it
    scores: np.ndarray            # (N,) score of that box; NaN where dropped
    states: np.ndarray            # (N,) int TrackState value, NO_STATE where dropped
    stamps: np.ndarray            # (N,) seconds
    times_s: np.ndarray           # (N,) seconds in tracker.update, NaN where dropped
    drop_reasons: dict[int, str]  # frame index -> why it has no answer
    events: list[tuple[int, TrackEvent]]
    wall_s: float = 0.0           # whole run including decoding and bookkeeping
    source: Any = None            # the sequence object, for overlays (load_frame)

    def __len__(self) -> int:
        return len(self.gt_absent)

    @property
    def dropped(self) -> np.ndarray:
        """(N,) True where the tracker has no answer for the frame."""
        d = np.zeros(len(self), dtype=bool)
        d[list(self.drop_reasons)] = True
        return d

    @property
    def held(self) -> np.ndarray:
        """(N,) True where the box claims the target (state TRACKING or REFOUND)."""
        return metrics.held(self.boxes_xywh, self.states)

    def event_tuples(self) -> list[tuple[int, EventKind, tuple | None]]:
        """Events as (frame, kind, box) for metrics.event_scores."""
        return [(f, e.kind, e.box_xywh) for f, e in self.events]


def empty_run(seq, stamps: np.ndarray | None = None) -> SequenceRun:
    """A run with every frame dropped; the runner fills in answers as they come."""
    n = len(seq)
    if stamps is None:
        stamps = np.arange(n, dtype=np.float64) / EvalConfig.fps
    return SequenceRun(
        name=str(seq.name), dataset=str(getattr(seq, 'dataset', '')), text=str(seq.text),
        gt_xywh=np.asarray(seq.boxes_xywh, dtype=np.float64).copy(),
        gt_absent=np.asarray(seq.absent, dtype=bool).copy(),
        boxes_xywh=np.full((n, 4), np.nan), scores=np.full(n, np.nan),
        states=np.full(n, NO_STATE, dtype=np.int64), stamps=np.asarray(stamps, np.float64),
        times_s=np.full(n, np.nan), drop_reasons={i: 'not processed' for i in range(n)},
        events=[], source=seq)


def record(run: SequenceRun, index: int, result) -> None:
    """Store the TrackResult of frame ``index`` in ``run``."""
    box = result.estimate_xywh
    if box is not None:
        run.boxes_xywh[index] = box
    run.scores[index] = result.score if result.box_xywh is not None else result.candidate_score
    run.states[index] = int(result.state)
    run.drop_reasons.pop(index, None)
    run.events.extend((index, e) for e in result.events)


def _frames(seq, prefetch: int) -> Iterable[tuple[int, np.ndarray | None, str]]:
    """Yield (index, frame or None, error) in order, decoding ahead in a thread."""
    def load(i):
        try:
            return i, seq.load_frame(i), ''
        except (TrackerError, OSError) as exc:
            return i, None, str(exc)

    if prefetch <= 0:
        for i in range(len(seq)):
            yield load(i)
        return
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def worker():
        for i in range(len(seq)):
            if stop.is_set():
                return
            q.put(load(i))

    t = threading.Thread(target=worker, name=f'prefetch-{seq.name}', daemon=True)
    t.start()
    try:
        for _ in range(len(seq)):
            yield q.get()
    finally:
        stop.set()
        while t.is_alive():     # unblock a worker waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


def run_sequence(tracker, seq, config: EvalConfig = EvalConfig(),
                 on_frame: Callable[[SequenceRun, int], None] | None = None,
                 init_box=None) -> SequenceRun:
    """Run ``tracker`` over every frame of ``seq`` and collect its answers.

    The command is set at the stamp of frame 0: language only, or with ``init_box``, or with the
    frame-1 ground-truth box when ``config.init == 'nl+box'``. Unreadable frames and inputs the
    tracker rejects are dropped with their reason; the run goes on. ``on_frame(run, index)`` is
    called after each frame (progress bars, live event printing).
    """
    n = len(seq)
    stamps = getattr(seq, 'stamps', None)
    if stamps is None:
        stamps = np.arange(n, dtype=np.float64) / config.fps
    run = empty_run(seq, stamps)
    t_start = time.perf_counter()
    if n == 0:
        return run
    box = None if init_box is None else tuple(float(v) for v in init_box)
    if box is None and config.init == 'nl+box':
        if not metrics.valid_boxes(run.gt_xywh[0]):
            _drop_all(run, 'init box: frame 1 has no ground-truth box')
            return run
        box = tuple(float(v) for v in run.gt_xywh[0])
    if hasattr(tracker, 'reset'):
        tracker.reset()
    try:
        events = tracker.set_command(run.text, float(run.stamps[0]), box_xywh=box)
    except InputError as exc:
        _drop_all(run, f'command rejected: {exc}')
        return run
    run.events.extend((0, e) for e in events)
    rejected = [e for e in events if e.kind == EventKind.COMMAND_REJECTED]
    if rejected:
        _drop_all(run, f'command rejected: {rejected[0].reason}')
        return run
    for i, frame, error in _frames(seq, config.prefetch):
        if frame is None:
            run.drop_reasons[i] = f'unreadable frame: {error}'
        else:
            t0 = time.perf_counter()
            try:
                result = tracker.update(frame, float(run.stamps[i]))
            except InputError as exc:
                run.drop_reasons[i] = f'input rejected: {exc}'
            else:
                run.times_s[i] = time.perf_counter() - t0
                record(run, i, result)
        if on_frame is not None:
            on_frame(run, i)
    run.wall_s = time.perf_counter() - t_start
    return run


def _drop_all(run: SequenceRun, reason: str) -> None:
    run.drop_reasons.update({i: reason for i in range(len(run))})


@dataclasses.dataclass(frozen=True)
class LazySequence:
    """A sequence read only when the batch reaches it, so a broken one is skipped, not fatal."""

    name: str
    load: Callable[[], Any]


def run_batch(tracker, sequences, config: EvalConfig = EvalConfig(), progress: bool = True,
              log: Callable[[str], None] = print, desc: str = ''
              ) -> tuple[list[SequenceRun], list[tuple[str, str]]]:
    """Run ``tracker`` over many sequences; returns (runs, skipped as (name, reason)).

    Items are sequences or :class:`LazySequence`. One that fails to load or run with a
    TrackerError or OSError is skipped with its message (logged at once) and the batch goes on.
    ``progress`` shows a bar over the frames of the sequences known so far.
    """
    sequences = list(sequences)
    runs, skipped = [], []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(len(s) for s in sequences if not isinstance(s, LazySequence)),
                   unit='frame', desc=desc or 'eval', leave=False)
    try:
        for item in sequences:
            seq = item
            try:
                if isinstance(item, LazySequence):
                    seq = item.load()
                    if bar is not None:
                        bar.total += len(seq)
                        bar.refresh()
                tick = (lambda r, i: bar.update(1)) if bar is not None else None
                runs.append(run_sequence(tracker, seq, config, on_frame=tick))
            except (TrackerError, OSError) as exc:
                name = getattr(seq, 'name', '?')
                skipped.append((str(name), str(exc)))
                log(f'skipped sequence {name}: {exc}')
    finally:
        if bar is not None:
            bar.close()
    return runs, skipped
