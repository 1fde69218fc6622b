"""Replay a recorded sequence through a running tracker node and collect its answers.

The player publishes the frames of a bag (``nl_tracker_ros.bags.read_sequence``) on ``image``
with their recorded header stamps, the command on ``command`` (reliable, volatile, as
``ros2 topic pub`` sends it) and, unless disabled, the frame stamps on ``/clock`` so a node
started with ``use_sim_time`` sees the recorded time. It records ``target`` and ``events`` and
matches them to frames by header stamp.

Modes:

- ``deterministic``: one frame at a time; the next frame goes out only after the node answered
  the previous one (or ``reply_timeout_s`` passed: that frame is dropped with the reason), so no
  frame is replaced before the node sees it;
- ``realtime``: frames go out at the recorded pace (times ``rate``); frames the node never
  answered (it keeps only the newest frame) are dropped as failures with the reason.

The result is an ``evaluation.SequenceRun`` (per-frame times are publish-to-answer latencies),
scored exactly like an offline run. :func:`launch_node` starts ``tracker_node`` in its own
process for the ``nl-tracker replay`` command.
"""
from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import time
from typing import Callable, Literal

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from nl_tracker_ros.errors import ConfigError, TrackerError
from nl_tracker_ros.evaluation.runner import SequenceRun, empty_run, record
from nl_tracker_ros.images import rgb_to_raw
from nl_tracker_ros.msg import TrackedTarget, TrackerStatus
from nl_tracker_ros.msg import TrackEvent as TrackEventMsg
from nl_tracker_ros.ros.convert import sec_to_stamp, stamp_to_sec
from nl_tracker_ros.ros.qos import command_qos
from nl_tracker_ros.track_types import EventKind, TrackEvent, TrackResult, TrackState

IMAGE_OUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2,
                           reliability=ReliabilityPolicy.RELIABLE)
ANSWER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                        reliability=ReliabilityPolicy.RELIABLE)
EVENT_MATCH_S = 1e-3      # an event belongs to the frame whose stamp is this close


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """How frames are paced and how long to wait for the node."""

    mode: Literal['deterministic', 'realtime'] = 'deterministic'
    rate: float = 1.0                 # realtime: playback speed factor
    reply_timeout_s: float = 30.0     # deterministic: longest wait for one frame's answer
    settle_s: float = 3.0             # realtime: wait for late answers after the last frame
    discovery_timeout_s: float = 120.0  # wait for the node (it builds its model first)
    command_timeout_s: float = 30.0   # wait for COMMAND_ACCEPTED / REJECTED
    publish_clock: bool = True        # stamps on /clock for a node with use_sim_time
    frame_id: str = 'camera'

    def __post_init__(self):
        if self.mode not in ('deterministic', 'realtime'):
            raise ConfigError(f"replay mode: expected 'deterministic' or 'realtime', "
                              f'got {self.mode!r}')
        if not self.rate > 0:
            raise ConfigError(f'replay rate: expected a positive number, got {self.rate}')


def _key(stamp) -> tuple[int, int]:
    return int(stamp.sec), int(stamp.nanosec)


class Player:
    """A node that feeds frames to ``tracker_node`` and records its targets and events."""

    def __init__(self, config: ReplayConfig = ReplayConfig(), context=None,
                 namespace: str = ''):
        self.config = config
        self.node = rclpy.create_node('nl_tracker_replay', namespace=namespace or None,
                                      context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        n = self.node
        self.targets: dict[tuple[int, int], tuple[TrackedTarget, float]] = {}
        self.events: list[TrackEventMsg] = []
        self.status: TrackerStatus | None = None      # the node's latest health report
        n.create_subscription(TrackedTarget, 'target', self._on_target, ANSWER_QOS)
        n.create_subscription(TrackEventMsg, 'events', self.events.append, ANSWER_QOS)
        n.create_subscription(TrackerStatus, 'status', self._on_status, 10)
        self.image_pub = n.create_publisher(Image, 'image', IMAGE_OUT_QOS)
        self.command_pub = n.create_publisher(String, 'command', command_qos())
        self.clock_pub = n.create_publisher(Clock, '/clock', 10) if config.publish_clock \
            else None

    def _on_status(self, msg: TrackerStatus) -> None:
        self.status = msg

    def _on_target(self, msg: TrackedTarget) -> None:
        self.targets[_key(msg.header.stamp)] = (msg, time.perf_counter())

    def close(self) -> None:
        """Destroy the node."""
        self.executor.remove_node(self.node)
        self.node.destroy_node()

    def spin_until(self, pred: Callable[[], bool], timeout: float) -> bool:
        """Process callbacks until ``pred()`` or ``timeout`` seconds; returns ``pred()``."""
        end = time.perf_counter() + timeout
        while not pred():
            left = end - time.perf_counter()
            if left <= 0:
                return pred()
            self.executor.spin_once(timeout_sec=min(left, 0.05))
        return True

    def wait_for_node(self, alive: Callable[[], bool] | None = None) -> None:
        """Wait until a node subscribes to images and commands and publishes targets.

        ``alive()`` (e.g. a launched process still running) is checked while waiting.
        """
        def ready():
            if alive is not None and not alive():
                raise TrackerError('replay: the tracker node exited before it was ready')
            return (self.image_pub.get_subscription_count() > 0
                    and self.node.count_publishers(self._resolve('target')) > 0
                    and self.command_pub.get_subscription_count() > 0)

        ok = self.spin_until(ready, self.config.discovery_timeout_s)
        if not ok:
            raise TrackerError(f'replay: no tracker node on {self._resolve("image")} within '
                               f'{self.config.discovery_timeout_s:g} s')

    def _resolve(self, name: str) -> str:
        ns = self.node.get_namespace().rstrip('/')
        return f'{ns}/{name}'

    def _clock(self, t: float) -> None:
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=sec_to_stamp(t)))

    def _send_command(self, text: str, stamp: float) -> TrackEventMsg:
        start = len(self.events)
        # The node stamps commands with its (simulated) clock: let it see the first stamp.
        self._clock(stamp)
        self.spin_until(lambda: False, 0.2)
        self._clock(stamp)
        self.command_pub.publish(String(data=text))
        kinds = (EventKind.COMMAND_ACCEPTED, EventKind.COMMAND_REJECTED)

        def answer():
            return next((e for e in self.events[start:] if e.kind in kinds
                         and e.phrase.strip() == text.strip()), None)

        if not self.spin_until(lambda: answer() is not None, self.config.command_timeout_s):
            raise TrackerError(f'replay: the node did not answer the command "{text}" within '
                               f'{self.config.command_timeout_s:g} s')
        return answer()

    def play(self, seq, on_frame: Callable[[SequenceRun, int], None] | None = None
             ) -> SequenceRun:
        """Replay ``seq`` (stamps, text, load_frame) and return what the node answered."""
        cfg = self.config
        n = len(seq)
        stamps = np.asarray(seq.stamps, dtype=np.float64)
        run = empty_run(seq, stamps)
        t_start = time.perf_counter()
        if n == 0:
            return run
        self.targets.clear()
        first_event = len(self.events)
        answer = self._send_command(seq.text, float(stamps[0]))
        track_id = int(answer.track_id)
        if answer.kind == EventKind.COMMAND_REJECTED:
            run.drop_reasons.update({i: f'command rejected: {answer.reason}' for i in range(n)})
            run.events.extend((0, _event(e)) for e in self.events[first_event:])
            return run
        keys: list[tuple[int, int] | None] = [None] * n
        sent = np.full(n, np.nan)
        t0 = time.perf_counter()
        for i in range(n):
            try:
                rgb = seq.load_frame(i)
            except (TrackerError, OSError) as exc:
                run.drop_reasons[i] = f'unreadable frame: {exc}'
                continue
            if cfg.mode == 'realtime':
                due = t0 + (stamps[i] - stamps[0]) / cfg.rate
                self.spin_until(lambda: time.perf_counter() >= due,
                                max(0.0, due - time.perf_counter()) + 0.01)
            msg = _image(rgb, float(stamps[i]), cfg.frame_id)
            keys[i] = _key(msg.header.stamp)
            self._clock(float(stamps[i]))
            sent[i] = time.perf_counter()
            self.image_pub.publish(msg)
            if cfg.mode == 'deterministic':
                got = self.spin_until(lambda: keys[i] in self.targets or
                                      self._error_for(stamps[i], first_event) is not None,
                                      cfg.reply_timeout_s)
                err = self._error_for(stamps[i], first_event)
                if err is not None and keys[i] not in self.targets:
                    run.drop_reasons[i] = f'node error: {err.reason}'
                elif not got:
                    run.drop_reasons[i] = (f'no answer from the node within '
                                           f'{cfg.reply_timeout_s:g} s')
            if on_frame is not None:
                on_frame(run, i)
        if cfg.mode == 'realtime':
            self.spin_until(lambda: all(k is None or k in self.targets for k in keys),
                            cfg.settle_s)
        for i, k in enumerate(keys):
            if k is None:
                continue
            if k in self.targets:
                msg, t_answer = self.targets[k]
                if int(msg.track_id) != track_id:
                    run.drop_reasons[i] = f'answer belongs to track {msg.track_id}'
                    continue
                box = _msg_box(msg.has_box, msg.x, msg.y, msg.width, msg.height)
                cand = _msg_box(msg.has_candidate, msg.candidate_x, msg.candidate_y,
                                msg.candidate_width, msg.candidate_height)
                record(run, i, TrackResult(stamp=float(stamps[i]), track_id=track_id,
                                           text=msg.phrase, state=TrackState(msg.state),
                                           box_xywh=box, score=float(msg.score),
                                           candidate_xywh=cand,
                                           candidate_score=float(msg.candidate_score)))
                run.times_s[i] = t_answer - sent[i]
            elif i not in run.drop_reasons or run.drop_reasons[i] == 'not processed':
                run.drop_reasons[i] = ('dropped by the node (a newer frame arrived first)'
                                       if cfg.mode == 'realtime' else 'no answer from the node')
        run.events.extend(_place_events(self.events[first_event:], stamps, track_id))
        run.wall_s = time.perf_counter() - t_start
        return run

    def _error_for(self, stamp: float, first: int) -> TrackEventMsg | None:
        for e in self.events[first:]:
            if e.kind == EventKind.ERROR and abs(stamp_to_sec(e.header.stamp) - stamp) \
                    < EVENT_MATCH_S:
                return e
        return None


def _image(rgb: np.ndarray, stamp: float, frame_id: str) -> Image:
    h, w, step, data = rgb_to_raw(rgb)
    return Image(header=Header(stamp=sec_to_stamp(stamp), frame_id=frame_id), height=h,
                 width=w, encoding='rgb8', is_bigendian=0, step=step, data=data)


def _msg_box(valid: bool, *xywh) -> tuple[float, float, float, float] | None:
    """A message's box fields as a box, None when its valid flag is false."""
    return tuple(float(v) for v in xywh) if valid else None


def _event(msg: TrackEventMsg) -> TrackEvent:
    box = _msg_box(msg.has_box, msg.x, msg.y, msg.width, msg.height)
    return TrackEvent(kind=EventKind(msg.kind), stamp=stamp_to_sec(msg.header.stamp),
                      track_id=int(msg.track_id), reason=msg.reason, box_xywh=box,
                      score=float(msg.score))


def _place_events(msgs, stamps: np.ndarray, track_id: int) -> list[tuple[int, TrackEvent]]:
    """Events of ``track_id`` as (frame, event): the frame with the same stamp, else frame 0
    (command events carry the command's stamp)."""
    out = []
    for m in msgs:
        if int(m.track_id) != track_id:
            continue
        e = _event(m)
        i = int(np.argmin(np.abs(stamps - e.stamp)))
        out.append((i if abs(stamps[i] - e.stamp) < EVENT_MATCH_S else 0, e))
    return out


def launch_node(params: dict[str, object], params_file: str | None = None,
                name: str = 'tracker_node', namespace: str = '',
                env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``tracker_node`` in its own process with ``use_sim_time`` and reliable images."""
    cmd = [sys.executable, '-m', 'nl_tracker_ros.ros.node', '--ros-args', '-r',
           f'__node:={name}']
    if namespace:
        cmd += ['-r', f'__ns:=/{namespace.strip("/")}']
    if params_file:
        cmd += ['--params-file', str(params_file)]
    for key, value in {'use_sim_time': True, 'image_qos': 'reliable', **params}.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ['-p', f'{key}:={text}']
    return subprocess.Popen(cmd, env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def private_domain() -> int:
    """A ROS domain id for a replay's own node and player, other than the environment's.

    Drawn from 1-101, the ids whose DDS ports stay below Linux's ephemeral port range (the ROS 2
    documentation's "choose a domain ID between 0 and 101"); the caller limits discovery to
    this machine, so only local processes on the same id could hear it.
    """
    current = os.environ.get('ROS_DOMAIN_ID', '0')
    return random.choice([d for d in range(1, 102) if str(d) != current.strip()])


def stop_node(proc: subprocess.Popen, timeout: float = 15.0) -> str:
    """SIGINT the node (as ros2 launch does), kill it if it hangs; returns its output."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read() if proc.stdout else ''


def replay_sequences(sequences, config: ReplayConfig = ReplayConfig(),
                     params: dict[str, object] | None = None, params_file: str | None = None,
                     namespace: str = '', launch: bool = True, progress: bool = True,
                     log: Callable[[str], None] = print, desc: str = 'replay',
                     on_frame: Callable[[Player, SequenceRun, int], None] | None = None
                     ) -> tuple[list[SequenceRun], list[tuple[str, str]]]:
    """Replay every sequence through one tracker node; returns (runs, skipped as (name, why)).

    With ``launch`` the node is started here (``params`` as ``-p`` overrides, ``params_file``
    as its params file) on a private ROS domain limited to this machine, and stopped at the
    end; otherwise a running node under ``namespace`` is used. ``on_frame(player, run, i)`` is
    called after each frame (the demo prints events from it). A sequence that fails is skipped
    with its reason and the rest go on; a node that never comes up raises TrackerError with the
    end of its output.
    """
    from tqdm import tqdm

    proc, domain = None, None
    if launch:
        domain = private_domain()
        env = {'ROS_DOMAIN_ID': str(domain), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
        os.environ.update(env)      # this process joins the same private domain
        proc = launch_node(params or {}, params_file=params_file, namespace=namespace, env=env)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, **({'domain_id': domain} if domain is not None else {}))
    player = Player(config, context=ctx, namespace=namespace)
    runs, skipped = [], []
    try:
        log(f'{desc}: waiting for the tracker node...')
        try:
            player.wait_for_node(alive=(lambda: proc.poll() is None) if proc else None)
        except TrackerError as exc:
            out = stop_node(proc) if proc else ''
            proc = None
            tail = '\n'.join(out.strip().splitlines()[-5:])
            raise TrackerError(f'{exc}' + (f'\n{tail}' if tail else '')) from None
        bar = tqdm(total=sum(len(s) for s in sequences), unit='frame', desc=desc,
                   disable=not progress, leave=False)

        def frame_done(run, i):
            bar.update(1)
            if on_frame is not None:
                on_frame(player, run, i)
        for seq in sequences:
            try:
                runs.append(player.play(seq, on_frame=frame_done))
            except (TrackerError, OSError) as exc:
                skipped.append((str(seq.name), str(exc)))
                log(f'skipped {seq.name}: {exc}')
        bar.close()
    finally:
        player.close()
        rclpy.shutdown(context=ctx)
        if proc is not None:
            stop_node(proc)
    return runs, skipped
