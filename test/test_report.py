"""Reports: JSON keys and blocks, plots, overlays (video and strip fallback), text summary."""
import json

import cv2
import numpy as np
import pytest

from nl_tracker_ros import evaluation as ev
from nl_tracker_ros.evaluation import report
from nl_tracker_ros.inputs import Sequence
from nl_tracker_ros.track_types import TrackResult, TrackState as S

BOX = (60.0, 70.0, 20.0, 10.0)    # below the text lines of the overlay


class Scripted:
    """Tracker that answers ``box`` with TRACKING on every frame."""

    def __init__(self, box):
        self.box = box

    def set_command(self, text, stamp, box_xywh=None):
        return ()

    def update(self, image, stamp):
        return TrackResult(stamp=stamp, track_id=1, text='', state=S.TRACKING,
                           box_xywh=self.box, score=1.0)


def make_sequence(root, name, n=6):
    (root / name).mkdir()
    paths = []
    for i in range(n):
        p = root / name / f'{i:04d}.jpg'
        cv2.imwrite(str(p), np.full((120, 160, 3), 90, np.uint8))
        paths.append(p)
    absent = np.zeros(n, bool)
    absent[n // 2] = True
    boxes = np.tile(np.array(BOX), (n, 1))
    boxes[absent] = np.nan
    return Sequence(name=name, dataset='t', text=f'the box in {name}', frame_paths=tuple(paths),
                    boxes_xywh=boxes, absent=absent)


@pytest.fixture
def two_configs(tmp_path):
    seqs = [make_sequence(tmp_path, 'easy'), make_sequence(tmp_path, 'hard')]
    cfg = ev.EvalConfig(fps=10.0, prefetch=0)
    runs = {'good': ev.run_batch(Scripted(BOX), seqs, cfg, progress=False)[0],
            'shifted': ev.run_batch(Scripted((70.0, 70.0, 20.0, 10.0)), seqs, cfg,
                                    progress=False)[0]}
    results = {k: ev.summarize(v, cfg, skipped=[('broken', 'gt.txt: 3 lines for 5 frames')])
               for k, v in runs.items()}
    return cfg, runs, results


def test_report_json_has_headline_keys_and_one_block_per_configuration(tmp_path, two_configs):
    cfg, runs, results = two_configs
    rep, paths, text = report.write_report(tmp_path / 'out', results, runs, cfg, worst=1)
    data = json.loads(paths['json'].read_text())
    for key in ('auc', 'precision20', 'norm_precision', 'absent_f1', 'frames_total',
                'frames_scored', 'frames_dropped'):
        assert key in data
    assert data['primary'] == 'good' and data['auc'] == results['good']['auc']
    assert set(data['configurations']) == {'good', 'shifted'}
    assert data['configurations']['shifted']['auc'] < data['auc']     # half-overlapping box
    assert set(data['configurations']['good']['sequences']) == {'easy', 'hard'}
    assert 'own box' in data['first_frame']
    assert data['configurations']['good']['skipped'][0]['name'] == 'broken'
    rows = [r.split('\t') for r in paths['per_sequence'].read_text().splitlines()]
    assert rows[0][:2] == ['sequence', 'good:auc'] and 'shifted:auc' in rows[0]
    assert [r[0] for r in rows[1:]] == ['easy', 'hard']
    col = rows[0].index('shifted:auc')
    assert float(rows[1][col]) == pytest.approx(
        data['configurations']['shifted']['sequences']['easy']['auc'], abs=1e-4)


def test_json_turns_nan_into_null(tmp_path):
    p = report.write_json({'a': float('nan'), 'b': [np.float32(np.inf), np.int64(3)]},
                          tmp_path / 'r.json')
    assert json.loads(p.read_text()) == {'a': None, 'b': [None, 3]}


def test_plots_are_images_with_a_line_per_configuration(tmp_path, two_configs):
    _, _, results = two_configs
    one = report.plot_curves({'good': results['good']}, tmp_path / 'one')
    two = report.plot_curves(results, tmp_path / 'two')
    assert set(two) == {'success', 'precision', 'norm_precision'}
    a = cv2.imread(str(one['success']))
    b = cv2.imread(str(two['success']))
    assert a is not None and a.shape == b.shape
    assert np.abs(a.astype(int) - b).sum() > 0      # the second configuration adds a line


def test_overlay_video_has_every_frame_and_draws_ground_truth(tmp_path, two_configs):
    _, runs, _ = two_configs
    pair = [(name, rs[0]) for name, rs in runs.items()]
    path = report.write_overlay(pair, tmp_path / 'ov.mp4')
    assert path.suffix == '.mp4'
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    _, frame = next(report.overlay_frames(pair[1:]))
    x, y, w, h = (int(v) for v in BOX)
    # Green ground truth on its left edge ('shifted' draws its box 10 px to the right).
    assert tuple(frame[y + h // 2, x]) == report.GT_COLOUR
    assert tuple(frame[y + h // 2, x + 10]) == report.RUN_COLOURS[0]


def test_overlay_falls_back_to_png_strip_without_codec(tmp_path, two_configs, monkeypatch):
    _, runs, _ = two_configs

    class NoCodec:
        def __init__(self, *a):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(report.cv2, 'VideoWriter', NoCodec)
    path = report.write_overlay([('good', runs['good'][1])], tmp_path / 'ov.mp4')
    assert path.suffix == '.png' and not (tmp_path / 'ov.mp4').exists()
    img = cv2.imread(str(path))
    assert img.shape[1] == 4 * 320          # 6 frames -> two rows of four tiles


def test_summary_fits_one_screen_and_names_configurations(two_configs):
    cfg, _, results = two_configs
    text = report.summary_text(report.build_report(results, cfg))
    lines = text.splitlines()
    assert len(lines) <= 30 and max(map(len, lines)) <= 110
    assert any(line.startswith('good') for line in lines)
    assert any(line.startswith('shifted') for line in lines)
    assert f"{100 * results['good']['auc']:5.1f}" in text
    assert 'broken' in text


def test_worst_sequences_orders_by_auc(two_configs):
    _, _, results = two_configs
    block = {'sequences': {'a': {'auc': 0.9}, 'b': {'auc': 0.1}, 'c': {'auc': None},
                           'd': {'auc': 0.5}}}
    assert report.worst_sequences(block, 2) == ['b', 'd']


def test_report_of_nothing_scored_is_valid_json_with_nulls(tmp_path):
    block = ev.summarize([], skipped=[('only', 'bag only: corrupt')])
    rep, paths, text = report.write_report(tmp_path, {'x': block})
    data = json.loads(paths['json'].read_text())
    assert data['auc'] is None and data['frames_total'] == 0
    assert 'only' in text and paths['success'].is_file()
