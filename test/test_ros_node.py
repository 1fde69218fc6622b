"""tracker_node on the real middleware: node in a subprocess, publisher/subscriber here.

The node runs the real tracker with the 'jointnlt-tiny' preset (random weights), so these tests
check plumbing (boxes, events and status arrive, headers match, ids change, bad frames are
counted), not accuracy. Each session uses its own ROS domain, limited to localhost.
"""
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='ROS 2 wheels not installed (scripts/setup.sh)')
pytest.importorskip('nl_tracker_ros.msg', reason='messages not built (scripts/setup.sh)')

from geometry_msgs.msg import Point32, PolygonStamped  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import (DescribeParameters, GetParameters, ListParameters,  # noqa: E402
                                SetParameters)
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from nl_tracker_ros.msg import TrackedTarget, TrackerStatus, TrackEvent  # noqa: E402

DOMAIN = 20 + os.getpid() % 80
H, W = 120, 160
BASE_ARGS = ['-p', 'tracker.preset:=jointnlt-tiny', '-p', 'tracker.device:=cpu',
             '-p', 'status_period:=0.2', '-p', 'warn_period:=0.0']


ROS_ENV = {'ROS_DOMAIN_ID': str(DOMAIN), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}


def node_env() -> dict:
    return dict(os.environ, **ROS_ENV, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')


def start_node(*extra: str, name: str = 'tracker_node') -> subprocess.Popen:
    cmd = [sys.executable, '-m', 'nl_tracker_ros.ros.node', '--ros-args', '-r',
           f'__node:={name}', *BASE_ARGS, *extra]
    return subprocess.Popen(cmd, env=node_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stop_node(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(2)  # SIGINT, as ros2 launch does
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.stdout.read()


class Client:
    """Publishers, subscribers and service clients talking to one tracker node."""

    def __init__(self, context, ns: str = '', node: str = 'tracker_node'):
        self.node = rclpy.create_node('test_client', context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        n = self.node
        self.targets, self.events, self.status = [], [], []
        n.create_subscription(TrackedTarget, f'{ns}target', self.targets.append, 50)
        n.create_subscription(TrackEvent, f'{ns}events', self.events.append, 100)
        n.create_subscription(TrackerStatus, f'{ns}status', self.status.append, 10)
        self.image = n.create_publisher(Image, f'{ns}image', 10)
        self.compressed = n.create_publisher(CompressedImage, f'{ns}image/compressed', 10)
        self.command = n.create_publisher(
            String, f'{ns}command',
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.init_box = n.create_publisher(PolygonStamped, f'{ns}init_box', 10)
        self.srv = {name: n.create_client(kind, f'{ns}{node}/{name}') for name, kind in (
            ('set_parameters', SetParameters), ('get_parameters', GetParameters),
            ('list_parameters', ListParameters), ('describe_parameters', DescribeParameters),
            ('reset', Trigger))}
        self.stamp = 1000

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()

    def spin_until(self, pred, timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return bool(pred())

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def call(self, name: str, request, timeout: float = 10.0):
        client = self.srv[name]
        assert client.wait_for_service(timeout_sec=timeout), f'{name} service not available'
        future = client.call_async(request)
        assert self.spin_until(future.done, timeout), f'{name} call timed out'
        return future.result()

    def frame(self, **override) -> Image:
        self.stamp += 1
        rgb = np.full((H, W, 3), 40, np.uint8)
        rgb[40:80, 60:100] = (220, 30, 30)
        msg = Image(height=H, width=W, encoding='rgb8', step=W * 3, data=rgb.tobytes())
        msg.header.stamp.sec, msg.header.stamp.nanosec = self.stamp, 123
        msg.header.frame_id = 'camera_optical'
        for k, v in override.items():
            setattr(msg, k, v)
        return msg

    def stream(self, n: int, period: float = 0.05) -> list:
        """Publish ``n`` good frames; return their headers."""
        headers = []
        for _ in range(n):
            msg = self.frame()
            headers.append(msg.header)
            self.image.publish(msg)
            self.spin_for(period)
        return headers

    def send(self, text: str) -> TrackEvent:
        """Publish a command and wait for the event answering it."""
        seen = len(self.events)
        self.command.publish(String(data=text))
        kinds = (TrackEvent.COMMAND_ACCEPTED, TrackEvent.COMMAND_REJECTED, TrackEvent.STOPPED)
        assert self.spin_until(lambda: any(e.kind in kinds for e in self.events[seen:]))
        return next(e for e in self.events[seen:] if e.kind in kinds)


@pytest.fixture(scope='module')
def context():
    saved = {k: os.environ.get(k) for k in ROS_ENV}
    os.environ.update(ROS_ENV)  # discovery settings are read from the environment at init
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope='module')
def nodes(tmp_path_factory):
    """Start every node process of this module at once so their start-ups overlap."""
    missing = tmp_path_factory.mktemp('w') / 'nowhere' / 'weights.safetensors'
    # The main node runs the plain joint model (its random weights never pass the recovery's
    # acceptance threshold); the compressed one keeps the default lost/re-found handling on.
    procs = {'main': start_node('-p', 'recovery.enabled:=false'),
             'compressed': start_node('-p', 'image_transport:=compressed', '-r', '__ns:=/cam2'),
             'no_weights': start_node('-p', f'tracker.weights:={missing}')}
    procs['no_weights'].missing = missing
    yield procs
    for proc in procs.values():
        stop_node(proc)


@pytest.fixture(scope='module')
def client(context, nodes):
    proc = nodes['main']
    c = Client(context)
    try:
        up = c.spin_until(lambda: proc.poll() is not None or (
            c.node.count_subscribers('image') > 0 and c.node.count_publishers('target') > 0),
            60.0)
        if proc.poll() is not None or not up:
            pytest.fail(f'tracker_node did not come up:\n{stop_node(proc)}')
        c.spin_for(0.5)  # let both sides finish matching
        yield c
    finally:
        c.close()
        out = stop_node(proc)
    assert proc.returncode == 0, out
    assert 'Traceback' not in out, out


def test_command_then_images_give_targets_with_the_image_header(client):
    accepted = client.send('the red square')
    assert accepted.kind == TrackEvent.COMMAND_ACCEPTED and accepted.track_id > 0
    assert accepted.phrase == 'the red square'
    start = len(client.targets)
    headers = client.stream(15)
    assert client.spin_until(lambda: len(client.targets) - start >= 5)
    sent = {(h.stamp.sec, h.stamp.nanosec): h.frame_id for h in headers}
    for t in client.targets[start:]:
        assert sent.get((t.header.stamp.sec, t.header.stamp.nanosec)) == t.header.frame_id
        assert t.track_id == accepted.track_id and t.phrase == 'the red square'
    last = client.targets[-1]
    assert last.state == TrackedTarget.STATE_TRACKING and last.has_box
    assert all(math.isfinite(v) for v in (last.x, last.y, last.width, last.height))
    assert 0.0 <= last.score <= 1.0
    acquired = [e for e in client.events if e.kind == TrackEvent.ACQUIRED]
    assert acquired and acquired[-1].track_id == accepted.track_id and acquired[-1].has_box
    assert (acquired[-1].header.stamp.sec, acquired[-1].header.stamp.nanosec) in sent


def test_new_command_mid_stream_starts_a_new_track(client):
    first = client.send('the red square')
    client.stream(5)
    second = client.send('the grey background')
    assert second.kind == TrackEvent.COMMAND_ACCEPTED and second.track_id != first.track_id
    start = len(client.targets)
    client.stream(8)
    assert client.spin_until(
        lambda: any(t.track_id == second.track_id for t in client.targets[start:]))
    newest = client.targets[-1]
    assert newest.track_id == second.track_id and newest.phrase == 'the grey background'


def test_bad_frames_are_counted_and_tracking_continues(client):
    client.send('the red square')
    bad = {
        'unsupported encoding': client.frame(encoding='32FC1'),
        'wrong step': client.frame(step=W * 3 - 1),
        'data size mismatch': client.frame(data=bytes(H * W * 3 - 7)),
        'zero size': client.frame(height=0, width=0, step=0, data=b''),
    }
    for msg in bad.values():
        client.image.publish(msg)
        client.spin_for(0.1)

    def counted():
        if not client.status:
            return False
        s = client.status[-1]
        counts = dict(zip(s.reject_reasons, s.reject_counts))
        return all(counts.get(r, 0) >= 1 for r in bad)
    assert client.spin_until(counted, 10.0), client.status[-1] if client.status else 'no status'
    s = client.status[-1]
    assert s.frames_rejected == sum(s.reject_counts) >= len(bad)
    assert s.device == 'cpu' and s.frames_received >= s.frames_processed
    start = len(client.targets)
    client.stream(3)
    assert client.spin_until(lambda: len(client.targets) > start)


def test_empty_command_stops_and_whitespace_too(client):
    client.send('the red square')
    client.stream(2)
    for text in ('', '   '):
        ev = client.send(text)
        assert ev.kind == TrackEvent.STOPPED
    start = len(client.targets)
    client.stream(3)
    assert client.spin_until(lambda: len(client.targets) > start)
    assert all(t.state == TrackedTarget.STATE_IDLE and not t.has_box
               for t in client.targets[start:])


def test_overlong_or_non_utf8_command_is_rejected_with_reason(client):
    ev = client.send('red ' * 400)
    assert ev.kind == TrackEvent.COMMAND_REJECTED and 'max_command_chars' in ev.reason
    raw = serialize_message(String(data='red cup'))
    seen = len(client.events)
    client.command.publish(raw.replace(b'red', b'r\xffd'))   # invalid UTF-8 on the wire
    assert client.spin_until(lambda: any(e.kind == TrackEvent.COMMAND_REJECTED
                                         for e in client.events[seen:]))
    ev = next(e for e in client.events[seen:] if e.kind == TrackEvent.COMMAND_REJECTED)
    assert 'UTF-8' in ev.reason


def test_init_box_is_validated_then_used(client):
    client.send('the red square')
    client.stream(2)

    def box(*pts):
        msg = PolygonStamped()
        msg.polygon.points = [Point32(x=float(x), y=float(y), z=0.0) for x, y in pts]
        return msg
    for bad in (box((float('nan'), 1), (10, 10)), box((-5, 1), (10, 10)),
                box((10, 10), (W + 50, 40)), box((3, 3))):
        seen = len(client.events)
        client.init_box.publish(bad)
        assert client.spin_until(lambda: any(e.kind == TrackEvent.COMMAND_REJECTED
                                             for e in client.events[seen:]))
        reason = next(e.reason for e in client.events[seen:]
                      if e.kind == TrackEvent.COMMAND_REJECTED)
        assert 'init' in reason and reason.strip()
    seen = len(client.events)
    client.init_box.publish(box((60, 40), (100, 80)))
    assert client.spin_until(lambda: any(e.kind == TrackEvent.COMMAND_ACCEPTED
                                         for e in client.events[seen:]))
    ev = next(e for e in client.events[seen:] if e.kind == TrackEvent.COMMAND_ACCEPTED)
    assert ev.has_box and (ev.x, ev.y, ev.width, ev.height) == (60, 40, 40, 40)
    assert ev.phrase == 'the red square'


def test_reset_service_drops_the_track(client):
    client.send('the red square')
    client.stream(2)
    seen = len(client.events)
    res = client.call('reset', Trigger.Request())
    assert res.success
    assert client.spin_until(lambda: any(e.kind == TrackEvent.STOPPED
                                         for e in client.events[seen:]))
    start = len(client.targets)
    client.stream(2)
    assert client.spin_until(lambda: len(client.targets) > start)
    assert client.targets[-1].state == TrackedTarget.STATE_IDLE


def _param(name, value) -> Parameter:
    v = ParameterValue()
    if isinstance(value, float):
        v.type, v.double_value = ParameterType.PARAMETER_DOUBLE, value
    elif isinstance(value, str):
        v.type, v.string_value = ParameterType.PARAMETER_STRING, value
    return Parameter(name=name, value=v)


def test_parameters_declared_described_and_validated(client):
    names = client.call('list_parameters', ListParameters.Request()).result.names
    for name in ('image_transport', 'status_period', 'tracker.preset', 'tracker.device',
                 'recovery.enabled', 'recovery.states.lost_after_frames'):
        assert name in names
    desc = client.call('describe_parameters',
                       DescribeParameters.Request(names=['tracker.preset', 'status_period']))
    preset, period = desc.descriptors
    assert preset.read_only and preset.description
    assert not period.read_only and period.type == ParameterType.PARAMETER_DOUBLE

    def set_one(name, value):
        req = SetParameters.Request(parameters=[_param(name, value)])
        return client.call('set_parameters', req).results[0]
    bad = set_one('status_period', -1.0)
    assert not bad.successful and bad.reason
    bad = set_one('tracker.preset', 'jointnlt-base')
    assert not bad.successful and 'read-only' in bad.reason.lower()
    bad = set_one('status_period', 'fast')          # wrong type
    assert not bad.successful and bad.reason
    good = set_one('status_period', 0.3)
    assert good.successful, good.reason
    got = client.call('get_parameters', GetParameters.Request(names=['status_period',
                                                                     'tracker.preset']))
    assert got.values[0].double_value == 0.3
    assert got.values[1].string_value == 'jointnlt-tiny'


def test_compressed_transport_and_corrupt_payload(context, nodes):
    import cv2
    proc = nodes['compressed']
    c = Client(context, ns='/cam2/')
    try:
        assert c.spin_until(lambda: proc.poll() is not None or (
            c.node.count_subscribers('/cam2/image/compressed') > 0
            and c.node.count_publishers('/cam2/target') > 0), 60.0), 'node did not come up'
        assert proc.poll() is None
        c.spin_for(0.5)
        assert c.send('the red square').kind == TrackEvent.COMMAND_ACCEPTED
        rgb = np.full((H, W, 3), 90, np.uint8)
        jpeg = cv2.imencode('.jpg', rgb)[1].tobytes()
        c.compressed.publish(CompressedImage(format='jpeg', data=b'\xff\xd8 not really a jpeg'))
        c.spin_for(0.1)
        for i in range(4):
            msg = CompressedImage(format='jpeg', data=jpeg)
            msg.header.stamp.sec, msg.header.frame_id = 500 + i, 'cam2'
            c.compressed.publish(msg)
            c.spin_for(0.05)
        assert c.spin_until(lambda: len(c.targets) > 0)
        assert c.targets[-1].header.frame_id == 'cam2' and c.targets[-1].header.stamp.sec >= 500
        assert c.spin_until(lambda: c.status and 'corrupt compressed image'
                            in c.status[-1].reject_reasons, 5.0)
    finally:
        c.close()
        stop_node(proc)


def test_missing_weights_fail_at_start_with_one_line(nodes):
    proc, missing = nodes['no_weights'], nodes['no_weights'].missing
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail('tracker_node kept running without its weights')
    out = proc.stdout.read()
    assert proc.returncode == 1
    assert 'Traceback' not in out, out
    last = out.strip().splitlines()[-1]
    assert str(missing) in last and last.startswith('tracker_node:'), out
