"""Replay through the real tracker node (own process) against the offline runner.

The node runs the 'jointnlt-tiny' preset with weights saved here from a seeded random model,
so the node and the offline tracker compute the same thing; this checks plumbing and frame
accounting, not accuracy.
"""
import os

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy', reason='ROS 2 wheels not installed (scripts/setup.sh)')
pytest.importorskip('nl_tracker_ros.msg', reason='messages not built (scripts/setup.sh)')
bags = pytest.importorskip('nl_tracker_ros.inputs.bags')

from nl_tracker_ros import evaluation as ev  # noqa: E402
from nl_tracker_ros.inputs import Sequence  # noqa: E402
from nl_tracker_ros.ros import replay as rp  # noqa: E402
from nl_tracker_ros.track_types import TrackState  # noqa: E402

N = 8


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    import torch

    from nl_tracker_ros.model.checkpoint import save_weights
    from nl_tracker_ros.model.config import get_preset
    from nl_tracker_ros.model.jointnlt import build_model

    tmp = tmp_path_factory.mktemp('replay')
    torch.manual_seed(0)
    cfg = get_preset('jointnlt-tiny')
    weights = tmp / 'tiny.safetensors'
    save_weights(build_model(cfg), weights, cfg)
    paths, boxes = [], []
    for i in range(N):
        img = np.full((120, 160, 3), 40, np.uint8)
        x = 20 + 8 * i
        img[40:70, x:x + 30] = (230, 40, 40)
        paths.append(tmp / f'{i:04d}.png')
        cv2.imwrite(str(paths[-1]), img)
        boxes.append([x, 40, 30, 30])
    absent = np.zeros(N, bool)
    absent[5] = True
    boxes = np.array(boxes, float)
    boxes[absent] = np.nan
    seq = Sequence('moving', 'test', 'the red square', tuple(paths), boxes, absent)
    bags.write_bag(seq, tmp / 'bag', fps=10.0)

    domain = rp.private_domain()
    env = {'ROS_DOMAIN_ID': str(domain), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
           'OMP_NUM_THREADS': '1'}
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    proc = rp.launch_node({'tracker.preset': 'jointnlt-tiny', 'tracker.device': 'cpu',
                           'tracker.weights': str(weights)}, name='replay_test_node', env=env)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    player = rp.Player(rp.ReplayConfig(discovery_timeout_s=90.0), context=ctx)
    try:
        player.wait_for_node(alive=lambda: proc.poll() is None)
    except Exception:
        player.close()
        rclpy.shutdown(context=ctx)
        pytest.fail(f'tracker node did not come up:\n{rp.stop_node(proc)}')
    yield weights, tmp / 'bag', player
    player.close()
    rclpy.shutdown(context=ctx)
    rp.stop_node(proc)


def test_deterministic_replay_matches_offline(setup):
    from nl_tracker_ros.ros.params import configs_from_values
    from nl_tracker_ros.tracker import build_tracker

    weights, bag, player = setup
    seq = bags.read_sequence(bag)
    replayed = player.play(seq)
    assert replayed.drop_reasons == {}              # every frame answered
    assert not np.isnan(replayed.times_s).any()
    # The same tracker the node builds from the same parameters (recovery as configured there).
    configs = configs_from_values({'tracker.preset': 'jointnlt-tiny', 'tracker.device': 'cpu',
                                   'tracker.weights': str(weights)})
    tracker = build_tracker(configs.tracker, recovery=configs.recovery)
    offline = ev.run_sequence(tracker, seq, ev.EvalConfig(prefetch=0))
    assert [TrackState(s) for s in replayed.states] == [TrackState(s) for s in offline.states]
    # The node sends float32 boxes, candidates included (random weights: some are not held).
    np.testing.assert_allclose(replayed.boxes_xywh, offline.boxes_xywh, atol=1e-3)
    candidates = ~offline.held & ~np.isnan(offline.boxes_xywh).any(axis=1)
    assert candidates.any() and np.array_equal(replayed.held, offline.held)
    a, b = ev.summarize([replayed]), ev.summarize([offline])
    for key in ('auc', 'precision20', 'norm_precision', 'absent_f1', 'frames_total',
                'frames_scored', 'frames_dropped'):
        assert a[key] == pytest.approx(b[key], abs=1e-9), key
    kinds = [e.kind for _, e in replayed.events]
    assert kinds[:1] == [e.kind for _, e in offline.events][:1]   # COMMAND_ACCEPTED first


def test_realtime_replay_accounts_for_dropped_frames(setup):
    _, bag, player = setup
    seq = bags.read_sequence(bag)
    cfg = player.config
    player.config = rp.ReplayConfig(mode='realtime', rate=50.0, settle_s=3.0)
    try:
        run = player.play(seq)
    finally:
        player.config = cfg
    answered = (~np.isnan(run.times_s)).sum()
    assert answered + len(run.drop_reasons) == N
    assert answered >= 1
    assert all('newer frame' in r for r in run.drop_reasons.values())
    s = ev.summarize([run])
    assert s['frames_scored'] + s['frames_dropped'] + s['frames_excluded'] == N
    assert s['frames_dropped'] == len(run.drop_reasons)
    from nl_tracker_ros.commands.replay import throughput
    line = throughput([run], rate=50.0)
    span = (run.stamps[-1] - run.stamps[0] + np.median(np.diff(run.stamps))) / 50.0
    assert line.startswith(f'answered {answered} of {N} frames, {answered / span:.1f} per second')
    assert f'({N / span:.1f} sent per second)' in line


def test_private_domain_is_a_safe_id_other_than_the_environments(monkeypatch):
    # ids above 101 reach Linux's ephemeral ports; the environment's own id is the user's graph
    monkeypatch.setenv('ROS_DOMAIN_ID', '7')
    drawn = {rp.private_domain() for _ in range(2000)}
    assert drawn <= set(range(1, 102)) - {7}
    assert len(drawn) > 90
