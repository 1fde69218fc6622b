"""TrackerNode's frame handling in-process: newest frame wins, stale and bad frames counted.

The tracker is replaced by a stand-in that blocks inside ``update`` until released, so what the
worker sees is deterministic; the lifecycle transitions are the real ones.
"""
import os
import threading
import time
import types

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='ROS 2 wheels not installed (scripts/setup.sh)')
pytest.importorskip('nl_tracker_ros.msg', reason='messages not built (scripts/setup.sh)')

from lifecycle_msgs.msg import State  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

import nl_tracker_ros.tracker as tracker_mod  # noqa: E402
from nl_tracker_ros.errors import CheckpointError  # noqa: E402
from nl_tracker_ros.ros import node as node_mod  # noqa: E402
from nl_tracker_ros.track_types import (EventKind, TrackEvent, TrackResult,  # noqa: E402
                                        TrackState)


class BlockingTracker:
    """Records what it is given; ``update`` waits for ``release`` after signalling ``entered``."""

    def __init__(self):
        self.device = 'cpu'
        self.stamps, self.commands = [], []
        self.entered, self.release = threading.Event(), threading.Event()
        self.track_id, self.text, self.state = 0, '', TrackState.IDLE
        self.policy = types.SimpleNamespace(rejected=lambda stamp, reason: TrackEvent(
            EventKind.COMMAND_REJECTED, stamp, self.track_id, reason))

    def set_command(self, text, stamp, box_xywh=None, image_size=None):
        self.commands.append((text, box_xywh))
        self.track_id += 1
        self.text, self.state = text, TrackState.GROUNDING
        return (TrackEvent(EventKind.COMMAND_ACCEPTED, stamp, self.track_id, 'ok', box_xywh),)

    def update(self, image, stamp):
        assert image.dtype == np.uint8 and image.shape == (4, 6, 3)
        self.stamps.append(stamp)
        self.entered.set()
        assert self.release.wait(10)
        return TrackResult(stamp, self.track_id, 'x', TrackState.TRACKING, (1, 1, 2, 2), 0.5)

    def reset(self):
        pass


@pytest.fixture
def context(monkeypatch):
    # A domain of its own, on localhost only, so other test sessions cannot feed this node.
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=20 + (os.getpid() + 23) % 80)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def frame(sec: int, **override) -> Image:
    msg = Image(height=4, width=6, encoding='rgb8', step=18, data=bytes(72))
    msg.header.stamp.sec = sec
    for k, v in override.items():
        setattr(msg, k, v)
    return msg


def wait_for(pred, timeout=10.0):
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if pred():
            return True
        event.wait(0.01)
    return pred()


def test_newest_frame_wins_and_stale_and_bad_frames_are_counted(context, monkeypatch):
    fake = BlockingTracker()
    monkeypatch.setattr(tracker_mod, 'build_tracker', lambda config, device=None, **kw: fake)
    node = node_mod.TrackerNode(context=context)
    try:
        node.trigger_configure()
        node.trigger_activate()
        assert node.tracker is fake
        node._on_command(String(data='the red cup'))
        assert wait_for(lambda: fake.commands == [('the red cup', None)])
        node._on_image(frame(1))
        assert fake.entered.wait(10)              # worker busy with frame 1
        for sec in (2, 3, 4):
            node._on_image(frame(sec))            # 2 and 3 are replaced before it is free
        node._on_image(frame(5, step=17))         # bad: counted, never queued
        node._on_image(frame(6, encoding='32FC1'))
        fake.release.set()
        assert wait_for(lambda: node._stats['processed'] == 2)
        assert fake.stamps == [1.0, 4.0]
        assert node._stats == {'received': 6, 'processed': 2, 'stale': 2}
        assert node._rejects == {'wrong step': 1, 'unsupported encoding': 1}
    finally:
        fake.release.set()
        node._teardown()
        node.destroy_node()


def test_configure_failure_keeps_the_node_unconfigured_with_one_line(context, monkeypatch):
    def fail(config, device=None, **kw):
        raise CheckpointError('weights /x/w.safetensors: not found; expected a file')
    monkeypatch.setattr(tracker_mod, 'build_tracker', fail)
    node = node_mod.TrackerNode(context=context)
    try:
        node.trigger_configure()
        assert node.tracker is None
        assert node.configure_error == 'weights /x/w.safetensors: not found; expected a file'
        assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
    finally:
        node.destroy_node()


def test_cleanup_frees_the_tracker_and_stops_the_worker(context, monkeypatch):
    fake = BlockingTracker()
    fake.release.set()
    monkeypatch.setattr(tracker_mod, 'build_tracker', lambda config, device=None, **kw: fake)
    node = node_mod.TrackerNode(context=context)
    try:
        node.trigger_configure()
        worker = node._worker
        assert worker.is_alive()
        node.trigger_cleanup()
        assert node.tracker is None and not worker.is_alive()
        node._on_image(frame(1))                  # inactive: ignored
        assert node._stats['received'] == 0
    finally:
        node.destroy_node()


def test_command_received_before_activate_is_applied_on_activate(context, monkeypatch):
    # A transient-local command is delivered as soon as configure subscribes.
    fake = BlockingTracker()
    fake.release.set()
    monkeypatch.setattr(tracker_mod, 'build_tracker', lambda config, device=None, **kw: fake)
    node = node_mod.TrackerNode(context=context)
    try:
        node.trigger_configure()
        node._on_command(String(data='the dog'))
        node._on_image(frame(1))                  # inactive: frames are not kept
        assert not wait_for(lambda: fake.commands, timeout=0.3)
        node.trigger_activate()
        assert wait_for(lambda: fake.commands == [('the dog', None)])
        assert fake.stamps == []
    finally:
        node._teardown()
        node.destroy_node()


def test_debug_image_draws_the_box_and_keeps_the_header():
    from std_msgs.msg import Header
    rgb = np.zeros((40, 60, 3), np.uint8)
    header = Header(frame_id='cam')
    header.stamp.sec = 7
    result = TrackResult(7.0, 1, 'x', TrackState.TRACKING, (10, 10, 20, 15), 0.5)
    msg = node_mod.debug_image(rgb, result, header)
    assert msg.header == header and msg.encoding == 'rgb8' and msg.step == 180
    out = np.frombuffer(msg.data, np.uint8).reshape(40, 60, 3)
    assert out[10, 20].any() and not out[20, 20].any()  # edge drawn, inside left alone
    assert not rgb.any()                                 # input untouched
    idle = TrackResult(7.0, 1, '', TrackState.IDLE, None, 0.0)
    assert not np.frombuffer(node_mod.debug_image(rgb, idle, header).data, np.uint8).any()
    # a candidate while searching: drawn too, in another colour
    searching = TrackResult(7.0, 1, 'x', TrackState.SEARCHING, None, 0.0,
                            candidate_xywh=(10, 10, 20, 15), candidate_score=0.2)
    seen = np.frombuffer(node_mod.debug_image(rgb, searching, header).data, np.uint8)
    seen = seen.reshape(40, 60, 3)
    assert seen[10, 20].any() and not seen[20, 20].any()
    assert not np.array_equal(seen[10, 20], out[10, 20])


def test_target_msg_carries_the_candidate_only_when_not_held():
    from std_msgs.msg import Header
    from nl_tracker_ros.ros.convert import target_msg
    held = target_msg(TrackResult(1.0, 3, 'x', TrackState.TRACKING, (1, 2, 3, 4), 0.7),
                      Header())
    assert held.has_box and not held.has_candidate and held.score == pytest.approx(0.7)
    lost = target_msg(TrackResult(1.0, 3, 'x', TrackState.SEARCHING, None, 0.0,
                                  candidate_xywh=(5, 6, 7, 8), candidate_score=0.25), Header())
    assert not lost.has_box and lost.score == 0.0 and lost.has_candidate
    assert (lost.candidate_x, lost.candidate_y, lost.candidate_width,
            lost.candidate_height) == (5, 6, 7, 8)
    assert lost.candidate_score == pytest.approx(0.25)


def test_worker_survives_an_unexpected_tracker_failure(context, monkeypatch):
    fake = BlockingTracker()
    fake.release.set()
    real_update = fake.update

    def flaky(image, stamp):
        if stamp == 1.0:
            raise RuntimeError('CUDA out of memory\nlong trace')
        return real_update(image, stamp)
    fake.update = flaky
    monkeypatch.setattr(tracker_mod, 'build_tracker', lambda config, device=None, **kw: fake)
    node = node_mod.TrackerNode(context=context)
    try:
        node.trigger_configure()
        node.trigger_activate()
        node._on_image(frame(1))
        assert wait_for(lambda: node._frame is None)
        node._on_image(frame(2))
        assert wait_for(lambda: node._stats['processed'] == 1)
        assert fake.stamps == [2.0] and node._worker.is_alive()
    finally:
        node._teardown()
        node.destroy_node()


def test_corrupt_weights_fail_configure_naming_the_file(context, tmp_path):
    from rclpy.parameter import Parameter
    bad = tmp_path / 'weights.safetensors'
    bad.write_bytes(b'\x00garbage, not a checkpoint' * 10)
    overrides = [Parameter('tracker.preset', value='jointnlt-tiny'),
                 Parameter('tracker.device', value='cpu'),
                 Parameter('tracker.weights', value=str(bad))]
    node = node_mod.TrackerNode(context=context, parameter_overrides=overrides)
    try:
        assert node.tracker_config.weights == str(bad)
        node.trigger_configure()
        assert node.tracker is None
        assert str(bad) in node.configure_error and '\n' not in node.configure_error
    finally:
        node.destroy_node()


def test_a_preset_without_weights_fails_configure_in_one_line(context):
    from rclpy.parameter import Parameter
    overrides = [Parameter('tracker.preset', value='jointnlt-tiny'),
                 Parameter('tracker.device', value='cpu')]
    node = node_mod.TrackerNode(context=context, parameter_overrides=overrides)
    try:
        node.trigger_configure()
        assert node.tracker is None
        assert node.configure_error.startswith('tracker.preset jointnlt-tiny: no weights ship '
                                               'with this preset; set tracker.weights')
        assert 'tracker.random_weights: true' in node.configure_error
        assert '\n' not in node.configure_error
    finally:
        node.destroy_node()


def test_status_reports_the_threads_in_use(context):
    from rclpy.parameter import Parameter
    overrides = [Parameter('tracker.preset', value='jointnlt-tiny'),
                 Parameter('tracker.random_weights', value=True),
                 Parameter('tracker.device', value='cpu'), Parameter('tracker.threads', value=1),
                 Parameter('recovery.enabled', value=False),
                 Parameter('status_period', value=0.05)]
    node = node_mod.TrackerNode(context=context, parameter_overrides=overrides)
    got = []
    try:
        node.trigger_configure()
        node.trigger_activate()
        sub = rclpy.create_node('status_reader', context=context)
        sub.create_subscription(node_mod.TrackerStatus, 'status', got.append, 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.add_node(sub)
        end = time.monotonic() + 10
        while not got and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        assert got and got[-1].threads == 1 and got[-1].device == 'cpu'
        executor.shutdown()
        sub.destroy_node()
    finally:
        node._teardown()
        node.destroy_node()


def test_prefers_a_fresh_frame_only_when_the_next_is_due_soon(context):
    node = node_mod.TrackerNode(context=context)
    try:
        node._interval = 1.0                      # a 1 Hz camera keeps the timing robust
        old, new = frame(1), frame(2)

        def wait(age: float, deliver_after: float | None = None) -> float:
            now = time.monotonic()
            node._frame = (old, now - age)
            if deliver_after is not None:
                def deliver():
                    with node._cond:
                        node._frame = (new, time.monotonic())
                        node._cond.notify()
                threading.Timer(deliver_after, deliver).start()
            with node._cond:
                node._wait_for_fresher_frame()
            return time.monotonic() - now
        assert wait(0.2) < 0.3 and node._frame[0] is old     # fresh enough: no wait
        assert wait(1.2) < 0.3 and node._frame[0] is old     # next frame already late
        took = wait(0.7, deliver_after=0.05)                 # next one due: wait for it
        assert node._frame[0] is new and took < 0.35
        took = wait(0.7)                                     # it never comes: bounded wait
        assert node._frame[0] is old and 0.3 < took < 1.0
    finally:
        node.destroy_node()
