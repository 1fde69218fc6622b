"""``tracker_node``: the language-guided tracker as a ROS 2 lifecycle node.

Topics (relative names, remap them):
  in   image             sensor_msgs/Image (or image/compressed, sensor_msgs/CompressedImage)
  in   command           std_msgs/String, reliable + volatile (``command_durability``);
                         '' or blanks = stop
  in   init_box          geometry_msgs/PolygonStamped: the box is the points' bounding rectangle
                         in image pixels; restarts the current phrase from that box
  out  target            nl_tracker_ros/TrackedTarget, one per processed frame, image header
  out  events            nl_tracker_ros/TrackEvent
  out  status            nl_tracker_ros/TrackerStatus, every ``status_period`` seconds
  out  debug_image       sensor_msgs/Image rgb8 with the box drawn (``publish_debug_image``)
  srv  ~/reset           std_srvs/Trigger: drop the current track (like an empty command)

The model is built on configure and freed on cleanup; with ``autostart`` (default) the node
configures and activates itself. Parameters other than the live ones (``ParamSpec.live``)
apply at configure: they can be set while the node is unconfigured (before configure, after
cleanup or a failed configure) and are refused while it is configured. Image callbacks only
keep the newest frame; one worker thread runs the tracker, so a slow model never backs up the
executor. Frames replaced before the worker got to them are counted as stale; malformed ones are
rejected, counted per reason and warned about at most once per WARN_PERIOD_S per reason.
"""
from __future__ import annotations

import collections
import logging
import signal
import sys
import threading
import time
from typing import Any

import cv2
import numpy as np
import rclpy
from geometry_msgs.msg import PolygonStamped
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from nl_tracker_ros import images as imconv
from nl_tracker_ros.errors import ConfigError, InputError, TrackerError
from nl_tracker_ros.msg import TrackedTarget, TrackerStatus
from nl_tracker_ros.msg import TrackEvent as TrackEventMsg
from nl_tracker_ros import tracker as tracker_mod
from nl_tracker_ros.ros.convert import event_msg, stamp_to_sec, target_msg
from nl_tracker_ros.ros.params import ParamSpec, allowed, configs_from_values, node_specs
from nl_tracker_ros.ros.qos import EVENT_QOS, RESULT_QOS, command_qos, image_qos
from nl_tracker_ros.track_types import EventKind, TrackEvent

NODE_NAME = 'tracker_node'
WARN_PERIOD_S = 5.0        # at most one warning per reject reason this often
MAX_COMMAND_CHARS = 1000   # longer commands are refused before tokenizing
TRACKER_FAILED = 'tracker error'   # reject reason for frames the tracker itself refused
AT_CONFIGURE = ' (applies at configure: set it while the node is unconfigured)'

_PARAM_TYPES = {
    'bool': ParameterType.PARAMETER_BOOL, 'int': ParameterType.PARAMETER_INTEGER,
    'float': ParameterType.PARAMETER_DOUBLE, 'str': ParameterType.PARAMETER_STRING,
    'bool_array': ParameterType.PARAMETER_BOOL_ARRAY,
    'int_array': ParameterType.PARAMETER_INTEGER_ARRAY,
    'float_array': ParameterType.PARAMETER_DOUBLE_ARRAY,
    'str_array': ParameterType.PARAMETER_STRING_ARRAY,
}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """ParameterDescriptor for a flat parameter spec: type, help, choices and range."""
    kind = ParameterType.PARAMETER_NOT_SET if spec.optional else _PARAM_TYPES[spec.kind]
    d = ParameterDescriptor(name=spec.name, type=kind,
                            description=spec.description + ('' if spec.live else AT_CONFIGURE),
                            dynamic_typing=spec.optional)
    if spec.choices:
        d.additional_constraints = f'one of {list(spec.choices)}'
    if spec.range is not None and spec.kind == 'float':
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                     to_value=float(spec.range[1]))]
    elif spec.range is not None and spec.kind == 'int':
        d.integer_range = [IntegerRange(from_value=int(spec.range[0]),
                                        to_value=int(spec.range[1]), step=1)]
    return d


class TrackerNode(LifecycleNode):
    """Lifecycle node around ``nl_tracker_ros.tracker.Tracker`` (see the module docstring)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any):
        super().__init__(node_name, **kwargs)
        self._specs = {s.name: s for s in node_specs()}
        for spec in self._specs.values():
            try:
                self.declare_parameter(spec.name, spec.default, descriptor(spec))
            except InvalidParameterValueException:   # outside the descriptor's range
                given = getattr(self, '_parameter_overrides', {}).get(spec.name)
                raise ConfigError(f'{spec.name}: expected {allowed(spec)}, got '
                                  f'{given.value if given is not None else "another value"}'
                                  ) from None
        # Raises ConfigError (one line naming the parameter) for a bad params file.
        self.config, self.tracker_config, self.recovery_config = configs_from_values(
            self._param_values())
        self.add_on_set_parameters_callback(self._on_set_parameters)

        # One lock: the callbacks hand frames, commands and resets to the worker thread, which
        # alone calls the tracker.
        self._cond = threading.Condition()
        self._frame: tuple | None = None            # newest unprocessed (msg, receive time)
        self._commands: collections.deque = collections.deque()
        self._worker: threading.Thread | None = None
        self._stop = False
        self._active = False
        self.tracker = None
        self.device = ''
        self.configure_error = ''
        self._entities: list = []
        self._status_timer = None
        self._reset_counters()

    # ---------------------------------------------------------------- parameters
    def _param_values(self) -> dict[str, Any]:
        return {name: self.get_parameter(name).value for name in self._specs}

    def _on_set_parameters(self, params) -> SetParametersResult:
        values = self._param_values()
        for p in params:
            if p.name not in self._specs:
                continue  # rclpy's own (use_sim_time, qos_overrides.*)
            if not self._specs[p.name].live and self.tracker is not None:
                return SetParametersResult(
                    successful=False,
                    reason=f'{p.name}: applies at configure and the node is configured; set it '
                           f'after `ros2 lifecycle set {self.get_fully_qualified_name()} '
                           f'cleanup`, or in the params file')
            values[p.name] = p.value
        try:
            config = configs_from_values(values).node
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        old, self.config = self.config, config
        if config.status_period != old.status_period and self._status_timer is not None:
            self._status_timer.timer_period_ns = int(config.status_period * 1e9)
            self._status_timer.reset()
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Build the tracker (loads weights) and create topics, service and worker."""
        # parameters set while unconfigured apply now (each was checked when it was set)
        self.config, self.tracker_config, self.recovery_config = configs_from_values(
            self._param_values())
        try:
            self.tracker = tracker_mod.build_tracker(self.tracker_config,
                                                     recovery=self.recovery_config)
            self.device = str(getattr(self.tracker, 'device', self.tracker_config.device))
        except Exception as exc:  # one line for the user, whatever the loader raised
            text = str(exc).splitlines()[0] if str(exc) else ''
            self.configure_error = (text if isinstance(exc, TrackerError)
                                    else f'{type(exc).__name__}: {text}')
            self.get_logger().error(f'configure failed: {self.configure_error}')
            return TransitionCallbackReturn.FAILURE
        self.configure_error = ''
        self._create_entities()
        self._stop = False
        self._worker = threading.Thread(target=self._work, name='tracker_worker', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'configured: tracker on {self.device}, images on '
            f"'{self._image_topic}' ({self.config.image_transport}, {self.config.image_qos})")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start accepting frames and commands (lifecycle publishers become active)."""
        result = super().on_activate(state)
        with self._cond:
            self._active = True
            self._cond.notify()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop accepting frames; the track and the model stay in memory."""
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the worker and free the model (and the CUDA cache)."""
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Same as cleanup, from any state."""
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _create_entities(self) -> None:
        group = MutuallyExclusiveCallbackGroup()
        compressed = self.config.image_transport == 'compressed'
        self._image_topic = 'image/compressed' if compressed else 'image'
        self._entities = [
            self.create_subscription(CompressedImage if compressed else Image, self._image_topic,
                                     self._on_image, image_qos(self.config.image_qos),
                                     callback_group=group),
            self.create_subscription(String, 'command', self._on_command,
                                     command_qos(self.config.command_durability),
                                     callback_group=group),
            self.create_subscription(PolygonStamped, 'init_box', self._on_init_box, RESULT_QOS,
                                     callback_group=group),
            self.create_service(Trigger, '~/reset', self._on_reset),
        ]
        self._pub_target = self.create_lifecycle_publisher(TrackedTarget, 'target', RESULT_QOS)
        self._pub_events = self.create_lifecycle_publisher(TrackEventMsg, 'events', EVENT_QOS)
        self._pub_status = self.create_lifecycle_publisher(TrackerStatus, 'status', RESULT_QOS)
        self._pub_debug = self.create_lifecycle_publisher(Image, 'debug_image', RESULT_QOS)
        self._status_timer = self.create_timer(self.config.status_period, self._publish_status)

    def _teardown(self) -> None:
        self._active = False
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None
        for entity in self._entities:
            if hasattr(entity, 'srv_type'):
                self.destroy_service(entity)
            else:
                self.destroy_subscription(entity)
        self._entities = []
        for name in ('_pub_target', '_pub_events', '_pub_status', '_pub_debug'):
            pub = getattr(self, name, None)
            if pub is not None:
                self.destroy_publisher(pub)
                setattr(self, name, None)
        if self._status_timer is not None:
            self.destroy_timer(self._status_timer)
            self._status_timer = None
        self.tracker = None      # the worker has stopped: nothing else holds it
        if 'torch' in sys.modules and self.device.startswith('cuda'):
            sys.modules['torch'].cuda.empty_cache()
        self._frame = None
        self._commands.clear()

    # ---------------------------------------------------------------- callbacks (executor)
    def _on_image(self, msg) -> None:
        if not self._active:
            return
        self._stats['received'] += 1
        try:
            if isinstance(msg, Image):
                imconv.check_raw(msg.encoding, msg.height, msg.width, msg.step, len(msg.data))
            elif len(msg.data) == 0:
                raise imconv.ImageRejected(imconv.ZERO_SIZE, 'empty compressed payload')
        except imconv.ImageRejected as exc:
            self._reject(exc.reason, str(exc))
            return
        now = time.monotonic()
        with self._cond:
            if self._frame is not None:
                self._stats['stale'] += 1
            self._frame = (msg, now)
            gap, self._last_arrival = now - self._last_arrival, now
            if gap < 1.0:  # frame interval estimate (EMA); a longer gap = a new stream
                self._interval = gap if not self._interval else 0.9 * self._interval + 0.1 * gap
            self._cond.notify()

    def _on_command(self, msg: String) -> None:
        stamp = self.get_clock().now().nanoseconds * 1e-9
        self._enqueue(('command', msg.data, stamp, None))

    def _on_init_box(self, msg: PolygonStamped) -> None:
        stamp = stamp_to_sec(msg.header.stamp) or self.get_clock().now().nanoseconds * 1e-9
        pts = [(p.x, p.y) for p in msg.polygon.points]
        if len(pts) < 2:
            self._enqueue(('reject', f'init_box: expected at least 2 points, got {len(pts)}',
                           stamp, None))
            return
        xs, ys = zip(*pts)
        box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        self._enqueue(('init_box', None, stamp, box))

    def _on_reset(self, request, response):
        if self.tracker is None:
            response.success, response.message = False, 'not configured'
            return response
        stamp = self.get_clock().now().nanoseconds * 1e-9
        self._enqueue(('reset', None, stamp, None))
        response.success, response.message = True, ('the current track, if any, is dropped; '
                                                    'waiting for a command')
        return response

    def _enqueue(self, item: tuple) -> None:
        # Queued even while inactive, in order with commands: a command that arrives between
        # configure and activate (a latched one, with command_durability transient_local) is
        # applied on activation.
        with self._cond:
            self._commands.append(item)
            self._cond.notify()

    # ---------------------------------------------------------------- worker thread
    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or (
                    self._active and (self._commands or self._frame)), timeout=0.5)
                if self._stop:
                    return
                if not self._active:
                    continue
                if self._frame is not None and self.config.prefer_fresh_frames:
                    self._wait_for_fresher_frame()
                commands = list(self._commands)
                self._commands.clear()
                frame, self._frame = self._frame, None
            try:
                for item in commands:
                    self._apply(*item)
                if frame is not None:
                    self._process(*frame)
            except Exception as exc:  # the worker must outlive one bad step
                if self._stop or not self.context.ok():
                    return  # shutting down (Ctrl-C): publishers are gone, nothing to report
                reason = f'{type(exc).__name__}: {exc}'.splitlines()[0]
                self.get_logger().error(f'tracker step failed: {reason}')
                try:
                    tracker = self.tracker
                    event = TrackEvent(EventKind.ERROR, time.time(),
                                       tracker.track_id if tracker else 0, reason)
                    self._publish_events([event], tracker.text if tracker else '')
                except Exception:
                    pass  # reporting the error must not take the worker down either

    def _wait_for_fresher_frame(self) -> None:
        """With the lock held: if the newest frame is over half a frame interval old and the
        next one is due within the interval, wait for it.

        A box's latency is the age of its frame when the step starts plus the step, so this
        bounds the age at half an interval instead of a whole one (lower latency for a slow
        model), at the cost of on average an eighth of an interval of idle per step.
        """
        msg, received = self._frame
        interval = self._interval
        age = time.monotonic() - received
        if not interval or age <= interval / 2 or age >= interval:
            return  # fresh enough, no rate known yet, or the next frame is already late
        self._cond.wait_for(
            lambda: self._stop or self._commands or self._frame is None
            or self._frame[0] is not msg, timeout=received + 1.1 * interval - time.monotonic())

    def _apply(self, kind: str, text: str | None, stamp: float, box) -> None:
        """Run one command / init box / reset / rejection on the tracker; publish its events."""
        tracker = self.tracker
        if tracker is None:
            return
        if kind == 'reject':
            events = (tracker.policy.rejected(stamp, text),)
        elif kind == 'reset':
            events = tracker.reset(stamp, 'reset service called')
        elif kind == 'init_box':
            if not tracker.text:
                events = (tracker.policy.rejected(
                    stamp, 'init_box: no phrase to initialise; publish a command first'),)
            else:
                events = tracker.set_command(tracker.text, stamp, box, self._image_size)
        elif len(text) > MAX_COMMAND_CHARS:
            events = (tracker.policy.rejected(stamp, f'command: {len(text)} characters; '
                                                     f'expected at most {MAX_COMMAND_CHARS}'),)
        elif '\ufffd' in text:  # rclpy decodes invalid UTF-8 bytes to U+FFFD
            events = (tracker.policy.rejected(
                stamp, 'command: not valid UTF-8; expected UTF-8 text'),)
        else:
            events = tracker.set_command(text, stamp, image_size=self._image_size)
        self._publish_events(events, tracker.text or (text or '').strip())

    def _process(self, msg, received: float) -> None:
        """Convert, track and publish one frame."""
        try:
            if isinstance(msg, Image):
                rgb = imconv.raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                                        msg.is_bigendian)
            else:
                rgb = imconv.compressed_to_rgb(msg.data)
        except imconv.ImageRejected as exc:
            self._reject(exc.reason, str(exc))
            return
        self._image_size = (rgb.shape[1], rgb.shape[0])
        self._frame_id = msg.header.frame_id
        stamp = stamp_to_sec(msg.header.stamp)
        t0 = time.perf_counter()
        tracker = self.tracker
        if tracker is None:
            return
        try:
            result = tracker.update(rgb, stamp)
        except InputError as exc:
            self._reject(TRACKER_FAILED, str(exc))
            return
        except TrackerError as exc:
            self._publish_events([TrackEvent(EventKind.ERROR, stamp, tracker.track_id,
                                             str(exc))], tracker.text)
            return
        with self._cond:
            self._step_ms.append((time.perf_counter() - t0) * 1e3)
            self._stats['processed'] += 1
        if self._pub_target is not None:
            self._pub_target.publish(target_msg(result, msg.header))
        self._publish_events(result.events, result.text)
        if self.config.publish_debug_image and self._pub_debug is not None:
            self._pub_debug.publish(debug_image(rgb, result, msg.header))
        self.last_latency_s = time.monotonic() - received

    # ---------------------------------------------------------------- outputs
    def _publish_events(self, events, phrase: str) -> None:
        for ev in events:
            if self._pub_events is not None:
                self._pub_events.publish(event_msg(ev, phrase, self._frame_id))
            if ev.kind in (EventKind.COMMAND_REJECTED, EventKind.ERROR):
                self.get_logger().warning(f'{ev.kind.name.lower()}: {ev.reason}')

    def _reject(self, reason: str, detail: str) -> None:
        with self._cond:
            self._rejects[reason] = self._rejects.get(reason, 0) + 1
            now = time.monotonic()
            last, suppressed = self._warned.get(reason, (-1e9, 0))
            if now - last < WARN_PERIOD_S:
                self._warned[reason] = (last, suppressed + 1)
                return
            self._warned[reason] = (now, 0)
        more = f' ({suppressed} more since the last warning)' if suppressed else ''
        self.get_logger().warning(f'{detail}{more}')

    def _publish_status(self) -> None:
        if self._pub_status is None or not self._active:
            return
        with self._cond:
            steps = np.array(self._step_ms, dtype=np.float64)
            self._step_ms = []
            rejects = dict(self._rejects)
            stats = dict(self._stats)
        now = time.monotonic()
        period, self._status_t = now - self._status_t, now
        tracker = self.tracker
        if tracker is None:
            return
        msg = TrackerStatus(
            header=Header(stamp=self.get_clock().now().to_msg(), frame_id=self._frame_id),
            state=int(tracker.state), track_id=int(tracker.track_id), phrase=tracker.text,
            device=self.device, threads=int(getattr(tracker, 'threads', 0)),
            provider=str(getattr(getattr(tracker, 'model', None), 'provider', 'torch')),
            model_fps=float(len(steps) / period) if period > 0 else 0.0,
            model_ms_p50=float(np.percentile(steps, 50)) if len(steps) else 0.0,
            model_ms_p95=float(np.percentile(steps, 95)) if len(steps) else 0.0,
            frames_received=stats['received'], frames_processed=stats['processed'],
            frames_dropped_stale=stats['stale'], frames_rejected=sum(rejects.values()),
            reject_reasons=list(rejects), reject_counts=list(rejects.values()))
        self._pub_status.publish(msg)

    def _reset_counters(self) -> None:
        self._stats = {'received': 0, 'processed': 0, 'stale': 0}
        self._rejects: dict[str, int] = {}
        self._warned: dict[str, tuple[float, int]] = {}
        self._step_ms: list[float] = []
        self._status_t = time.monotonic()
        self._frame_id = ''
        self._image_size: tuple[int, int] | None = None
        self._last_arrival = -1e9
        self._interval = 0.0
        self.last_latency_s = float('nan')
        self._pub_target = self._pub_events = self._pub_status = self._pub_debug = None


def debug_image(rgb: np.ndarray, result, header: Header) -> Image:
    """rgb8 Image of ``rgb`` with the result's box and state drawn on it: the held box thick
    and green, an unconfirmed candidate thin and orange."""
    out = rgb.copy()
    box = result.estimate_xywh
    if box is not None:
        x, y, w, h = (int(round(v)) for v in box)
        held = result.box_xywh is not None
        colour = (0, 255, 0) if held else (255, 64, 0)
        score = result.score if held else result.candidate_score
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2 if held else 1)
        cv2.putText(out, f'{result.state.name} {score:.2f}', (x, max(12, y - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    h, w, step, data = imconv.rgb_to_raw(out)
    return Image(header=header, height=h, width=w, encoding='rgb8', is_bigendian=0, step=step,
                 data=data)


class RosLogHandler(logging.Handler):
    """Puts the core's log records (``nl_tracker_ros.*``: recovery notes, loader warnings) on
    the node's ROS logger, so they reach the console and /rosout with the node's name."""

    def __init__(self, node: Node):
        super().__init__(logging.WARNING)
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            self._logger.error(text)
        else:
            self._logger.warning(text)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``tracker_node`` / ``ros2 run nl_tracker_ros tracker_node``."""
    argv = sys.argv[1:] if args is None else list(args)
    own = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    if '-h' in own or '--help' in own:
        print(f'usage: {NODE_NAME} [--ros-args -p NAME:=VALUE -r FROM:=TO --params-file FILE]'
              f'\n{__doc__}')
        return 0
    rclpy.init(args=args)
    node = None
    try:
        node = TrackerNode()
        core = logging.getLogger('nl_tracker_ros')
        core.addHandler(RosLogHandler(node))
        core.propagate = False
        if node.config.autostart:
            node.trigger_configure()
            if node.tracker is None:
                print(f'{NODE_NAME}: {node.configure_error or "configure failed"}',
                      file=sys.stderr)
                return 1
            node.trigger_activate()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except TrackerError as exc:
        print(f'{NODE_NAME}: {exc}', file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C in a terminal reaches the node twice (the terminal and ros2 launch): the
        # second one must not interrupt the teardown
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node._teardown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
