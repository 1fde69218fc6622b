"""Offline evaluation: run a tracker over annotated sequences, write and score the results.

Any object with the Tracker contract works (``reset()``, ``set_command(text, stamp, box_xywh)``,
``update(image, stamp) -> TrackResult``); nothing here imports ROS or the model. A sequence is any
object shaped like :class:`nl_tracker_ros.sequence.Sequence` (``name``, ``text``, ``boxes_xywh``,
``absent``, ``len()``, ``load_frame(i)``; optional ``dataset`` and ``stamps``), so bag readers can
feed the same runner.

Every frame is accounted for: it gets the tracker's answer, or it is dropped with a reason (an
unreadable frame, an input the tracker rejected, a rejected command). Results are written in the
pytracking text layout so existing toolkits read them: ``<name>.txt`` with one tab-separated
``x y w h`` line per frame (``0 0 0 0`` where the tracker gave no box: pytracking's analysis then
carries the previous box forward, our own scoring counts it as a failure), ``<name>_time.txt``
with seconds per frame, plus ``<name>_frames.tsv`` with the state, score and status of each frame.

The box of a frame is the tracker's estimate (``TrackResult.estimate_xywh``): the held box, or
while the target is not held the unconfirmed candidate with its score, as long-term trackers
give a box and a confidence on every frame. Whether the box was a claim that the target is
there comes from the state (TRACKING or REFOUND), which the lost/re-found and absent-aware
scores use.
"""
from __future__ import annotations

import dataclasses
import pathlib
import queue
import threading
import time
from collections import Counter
from typing import Any, Callable, Iterable, Literal

import numpy as np

from nl_tracker_ros import metrics
from nl_tracker_ros.errors import ConfigError, InputError, TrackerError
from nl_tracker_ros.track_types import EventKind, TrackEvent, TrackState

NO_STATE = -1   # state code of a dropped frame


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How sequences are run and scored."""

    init: Literal['nl', 'nl+box'] = 'nl'    # language only, or language plus the frame-1 box
    # see nl_tracker_ros.metrics
    convention: Literal['pytracking', 'tnl2k', 'absent-aware'] = 'pytracking'
    fps: float = 30.0                # stamps i / fps for sequences without their own stamps
    event_tolerance: int = 5         # frames a LOST event may precede the disappearance
    loss_within: int = 5             # "lost reported within N frames" (issue 3 acceptance)
    reacquire_within: int = 10       # "re-found within N frames" (issue 3 acceptance)
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


# ----------------------------------------------------------------------------- plain inputs

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg')


class FrameFolder:
    """An image folder (sorted by name) as an unannotated sequence for ``run_sequence``."""

    dataset = 'input'
    stamps = None

    def __init__(self, folder: str | pathlib.Path, text: str = '', name: str = ''):
        folder = pathlib.Path(folder)
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not paths:
            raise InputError(f'input folder {folder}: expected image files '
                             f'({", ".join(IMAGE_EXTS)}), found none')
        self.name, self.text, self.frame_paths = name or folder.name, text, tuple(paths)
        self.boxes_xywh = np.full((len(paths), 4), np.nan)
        self.absent = np.zeros(len(paths), dtype=bool)

    def __len__(self) -> int:
        return len(self.frame_paths)

    def load_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB uint8."""
        import cv2
        bgr = cv2.imread(str(self.frame_paths[index]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f'cannot read image {self.frame_paths[index]}')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class VideoFrames:
    """A video file as an unannotated sequence; frames decode in order (seeks if asked not to).

    Stamps come from the container's frame rate (``fps`` when it has none).
    """

    dataset = 'input'

    def __init__(self, path: str | pathlib.Path, text: str = '', fps: float = 30.0):
        import cv2
        self.path = pathlib.Path(path)
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise InputError(f'video {self.path}: cannot open (missing file or no codec)')
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n <= 0:
            raise InputError(f'video {self.path}: expected at least one frame, found none')
        rate = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = rate if rate and rate > 0 else fps
        self.name, self.text = self.path.stem, text
        self.stamps = np.arange(n, dtype=np.float64) / self.fps
        self.boxes_xywh = np.full((n, 4), np.nan)
        self.absent = np.zeros(n, dtype=bool)
        self._next = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.absent)

    def load_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB uint8."""
        import cv2
        with self._lock:
            if index != self._next:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, bgr = self._cap.read()
            self._next = index + 1
        if not ok or bgr is None:
            raise InputError(f'video {self.path}: cannot decode frame {index}')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def is_bag(path: str | pathlib.Path) -> bool:
    """True for a rosbag2 folder (metadata.yaml) or a bare .db3 / .mcap file."""
    path = pathlib.Path(path)
    return (path.is_dir() and (path / 'metadata.yaml').is_file()) or \
        path.suffix.lower() in ('.db3', '.mcap')


def open_bag(path: str | pathlib.Path, text: str = ''):
    """A recorded bag as a sequence (frames, stamps, command, ground truth if recorded)."""
    try:
        from nl_tracker_ros import bags
    except ImportError:
        raise InputError(f'bag {path}: bag support (nl_tracker_ros.bags) is not available in '
                         f'this build') from None
    return bags.read_sequence(path, text=text)


def open_input(path: str | pathlib.Path, text: str = '', fps: float = 30.0):
    """An image folder, video file or bag as a sequence for ``run_sequence``.

    ``text`` replaces the command recorded in a bag when given. Folders and videos have no
    ground truth (all NaN); a bag's recorded ground truth comes along when it has one.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise InputError(f'input {path}: no such file or folder')
    if is_bag(path):
        return open_bag(path, text)
    if path.is_dir():
        # A LaSOT (img/, nlp.txt) or TNL2K (imgs/, language.txt) sequence folder, or images.
        for sub, lang in (('img', 'nlp.txt'), ('imgs', 'language.txt')):
            if (path / sub).is_dir():
                if not text and (path / lang).is_file():
                    text = ' '.join((path / lang).read_text(errors='replace').split())
                return FrameFolder(path / sub, text, name=path.name)
        return FrameFolder(path, text)
    if path.suffix.lower() in VIDEO_EXTS:
        return VideoFrames(path, text, fps)
    raise InputError(f'input {path}: expected an image folder, a video '
                     f'({", ".join(VIDEO_EXTS)}) or a rosbag2')


# ----------------------------------------------------------------------------- results files

def write_results(run: SequenceRun, out_dir: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """Write one run in the pytracking text layout (see module docstring); returns the paths."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {'boxes': out / f'{run.name}.txt', 'time': out / f'{run.name}_time.txt',
             'frames': out / f'{run.name}_frames.tsv'}
    boxes = np.where(metrics.valid_boxes(run.boxes_xywh)[:, None], run.boxes_xywh, 0.0)
    np.savetxt(paths['boxes'], boxes, delimiter='\t', fmt='%.3f')
    np.savetxt(paths['time'], np.nan_to_num(run.times_s, nan=0.0), fmt='%.6f')
    status = frame_status(run)
    lines = ['frame\tstamp\tstatus\tstate\tscore\ttime_ms\treason']
    for i in range(len(run)):
        st = int(run.states[i])
        state = TrackState(st).name if st != NO_STATE else '-'
        score = '' if np.isnan(run.scores[i]) else f'{run.scores[i]:.4f}'
        ms = '' if np.isnan(run.times_s[i]) else f'{run.times_s[i] * 1e3:.2f}'
        reason = run.drop_reasons.get(i, '').replace('\t', ' ').replace('\n', ' ')
        lines.append(f'{i}\t{run.stamps[i]:.6f}\t{status[i]}\t{state}\t{score}\t{ms}\t{reason}')
    paths['frames'].write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return paths


def read_boxes(path: str | pathlib.Path) -> np.ndarray:
    """Read a pytracking results/ground-truth file (tab or comma); zero-size rows become NaN."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise InputError(f'results file {path}: cannot read ({exc.strerror})') from None
    rows = []
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.replace(',', '\t').split()
        try:
            row = [float(v) for v in parts]
        except ValueError:
            raise InputError(f'results file {path}: line {k} is not numbers: {line!r}') from None
        if len(row) != 4:
            raise InputError(f'results file {path}: line {k}: expected 4 values, got {len(row)}')
        rows.append(row)
    boxes = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    boxes[~metrics.valid_boxes(boxes)] = np.nan
    return boxes


def run_from_results(seq, results_dir: str | pathlib.Path) -> SequenceRun:
    """A run read back from ``<results_dir>/<name>.txt`` (ours or any pytracking tracker's).

    With our ``<name>_frames.tsv`` next to it, states, scores and dropped frames come back too;
    otherwise a frame with a box is TRACKING and a ``0 0 0 0`` line means no box (LOST).
    """
    results_dir = pathlib.Path(results_dir)
    path = results_dir / f'{seq.name}.txt'
    boxes = read_boxes(path)
    n = len(seq)
    if len(boxes) != n:
        raise InputError(f'results file {path}: {len(boxes)} lines for {n} frames')
    run = empty_run(seq, getattr(seq, 'stamps', None))
    run.boxes_xywh[:] = boxes
    held = metrics.valid_boxes(boxes)
    run.states[:] = np.where(held, int(TrackState.TRACKING), int(TrackState.LOST))
    run.scores[:] = held.astype(np.float64)
    run.drop_reasons.clear()
    table = results_dir / f'{seq.name}_frames.tsv'
    if table.is_file():
        rows = [r.split('\t') for r in table.read_text(encoding='utf-8').splitlines()[1:] if r]
        if len(rows) != n:
            raise InputError(f'results file {table}: {len(rows)} rows for {n} frames')
        for i, r in enumerate(rows):
            if r[2] == 'dropped':
                run.drop_reasons[i] = r[6] if len(r) > 6 and r[6] else 'dropped'
                run.states[i], run.scores[i] = NO_STATE, np.nan
                continue
            if r[3] in TrackState.__members__:
                run.states[i] = int(TrackState[r[3]])
            run.scores[i] = float(r[4]) if r[4] else np.nan
            run.times_s[i] = float(r[5]) / 1e3 if r[5] else np.nan
    return run


def frame_status(run: SequenceRun, convention: str = 'pytracking') -> list[str]:
    """One status word per frame: scored, dropped, or excluded (and why)."""
    err = metrics.frame_errors(run.boxes_xywh, run.gt_xywh, run.gt_absent, run.dropped,
                               convention, run.held)
    return [metrics.STATUS_NAMES[s] for s in err.status]


# ----------------------------------------------------------------------------- scoring

@dataclasses.dataclass(frozen=True)
class SequenceScore:
    """Numbers of one sequence: the JSON block, the curves and the absent confusion."""

    block: dict
    curves: metrics.Curves | None
    absent: metrics.Counts
    loss_delays: list
    reacquire_delays: list
    events: dict


def score_run(run: SequenceRun, config: EvalConfig = EvalConfig()) -> SequenceScore:
    """Score one run against its ground truth under ``config.convention``."""
    err = metrics.frame_errors(run.boxes_xywh, run.gt_xywh, run.gt_absent, run.dropped,
                               config.convention, run.held)
    cur = metrics.curves(err)
    dropped = run.dropped
    known = metrics.valid_boxes(run.gt_xywh) | run.gt_absent
    pred_absent = metrics.predicted_absent(run.boxes_xywh, run.states)
    absent = metrics.absent_counts(pred_absent, run.gt_absent, known & ~dropped)
    # A dropped frame is "no answer": it cannot detect a loss nor hold the target.
    loss = metrics.loss_delays(pred_absent & ~dropped, run.gt_absent)
    reacq = metrics.reacquire_delays(run.boxes_xywh, run.states, run.gt_xywh, run.gt_absent)
    events = metrics.event_scores(run.event_tuples(), run.gt_xywh, run.gt_absent,
                                  config.event_tolerance)
    visible_scored = (err.status == metrics.SCORED) & ~run.gt_absent
    counts = np.bincount(err.status, minlength=len(metrics.STATUS_NAMES))
    tracker_s = float(np.nansum(run.times_s))
    processed = int((~np.isnan(run.times_s)).sum())
    block = {
        'name': run.name, 'dataset': run.dataset, 'text': run.text,
        'auc': cur.auc if cur else None,
        'precision20': cur.precision20 if cur else None,
        'norm_precision': cur.norm_precision_score if cur else None,
        'mean_iou': float(err.iou[visible_scored].mean()) if visible_scored.any() else None,
        'absent_precision': absent.precision, 'absent_recall': absent.recall,
        'absent_f1': absent.f1, 'absent_counts': dataclasses.asdict(absent),
        'loss_delay': metrics.delay_summary(loss, config.loss_within),
        'reacquire_delay': metrics.delay_summary(reacq, config.reacquire_within),
        'events': events,
        'frames_total': len(run),
        'frames_scored': int(counts[metrics.SCORED]),
        'frames_dropped': int(counts[metrics.DROPPED]),
        'frames_excluded': int(counts[metrics.EXCLUDED_ABSENT] + counts[metrics.EXCLUDED_NO_GT]),
        'frames_in_curves': int(err.in_curve.sum()),
        'drop_reasons': dict(Counter(run.drop_reasons.values())),
        'tracker_fps': processed / tracker_s if tracker_s > 0 else None,
        'tracker_s': tracker_s, 'wall_s': run.wall_s,
    }
    return SequenceScore(block=block, curves=cur, absent=absent, loss_delays=loss,
                         reacquire_delays=reacq, events=events)


def summarize(runs: list[SequenceRun], config: EvalConfig = EvalConfig(),
              skipped: Iterable[tuple[str, str]] = ()) -> dict:
    """One configuration's JSON block: overall figures, curves and per-sequence entries.

    Success, precision and normalised precision average the per-sequence curves (pytracking);
    absent precision/recall/F1 pool the frame counts of all sequences; frame counts add up.
    """
    skipped = list(skipped)
    scores = [score_run(r, config) for r in runs]
    mean = metrics.mean_curves([s.curves for s in scores])
    absent = sum((s.absent for s in scores), metrics.Counts())
    loss = [d for s in scores for d in s.loss_delays]
    reacq = [d for s in scores for d in s.reacquire_delays]
    ev = {}
    for key in ('lost', 'refound'):
        tot = {k: sum(s.events[key][k] for s in scores)
               for k in ('events', 'correct', 'transitions', 'recalled')}
        tot['precision'] = tot['correct'] / tot['events'] if tot['events'] else None
        tot['recall'] = tot['recalled'] / tot['transitions'] if tot['transitions'] else None
        ev[key] = tot
    blocks = [s.block for s in scores]
    ious = [b['mean_iou'] for b in blocks if b['mean_iou'] is not None]
    tracker_s = sum(b['tracker_s'] for b in blocks)
    processed = sum(int((~np.isnan(r.times_s)).sum()) for r in runs)
    frames = {k: sum(b[k] for b in blocks) for k in
              ('frames_total', 'frames_scored', 'frames_dropped', 'frames_excluded')}
    drop_reasons = Counter()
    for b in blocks:
        drop_reasons.update(b['drop_reasons'])
    return {
        'auc': mean.auc if mean else None,
        'precision20': mean.precision20 if mean else None,
        'norm_precision': mean.norm_precision_score if mean else None,
        'mean_iou': float(np.mean(ious)) if ious else None,
        'absent_precision': absent.precision, 'absent_recall': absent.recall,
        'absent_f1': absent.f1, 'absent_counts': dataclasses.asdict(absent),
        'loss_delay': metrics.delay_summary(loss, config.loss_within),
        'reacquire_delay': metrics.delay_summary(reacq, config.reacquire_within),
        'events': ev,
        **frames,
        'drop_reasons': dict(drop_reasons),
        'sequences_total': len(runs) + len(skipped),
        'sequences_scored': sum(s.curves is not None for s in scores),
        'tracker_fps': processed / tracker_s if tracker_s > 0 else None,
        'curves': {
            'overlap_thresholds': metrics.OVERLAP_THRESHOLDS.tolist(),
            'success': mean.success.tolist() if mean else None,
            'center_thresholds_px': metrics.CENTER_THRESHOLDS.tolist(),
            'precision': mean.precision.tolist() if mean else None,
            'norm_center_thresholds': metrics.NORM_CENTER_THRESHOLDS.tolist(),
            'norm_precision': mean.norm_precision.tolist() if mean else None,
        },
        'sequences': {b['name']: b for b in blocks},
        'skipped': [{'name': n, 'reason': r} for n, r in skipped],
    }
