"""Offline runner: every frame accounted for, results files, batch robustness, scoring."""
import json
import pathlib

import cv2
import numpy as np
import pytest

from nl_tracker_ros import evaluation as ev
from nl_tracker_ros.errors import ConfigError, InputError, TrackerError
from nl_tracker_ros.inputs import Sequence, open_input
from nl_tracker_ros.track_types import EventKind, TrackEvent, TrackResult, TrackState as S


class FakeTracker:
    """Answers from a script: one (box or None, state[, candidate]) per update call; records
    its calls."""

    def __init__(self, script, reject_text=None, bad_frames=(), acquire=False):
        self.script = list(script)
        self.acquire = acquire             # ACQUIRED with the first held box, as trackers do
        self.reject_text = reject_text
        self.bad_frames = set(bad_frames)   # stamps (frame indices at fps 1) it rejects
        self.commands, self.updates, self.resets = [], [], 0

    def reset(self):
        self.resets += 1

    def set_command(self, text, stamp, box_xywh=None):
        self.commands.append((text, stamp, box_xywh))
        self.k = 0
        self.acquired = False
        if text == self.reject_text:
            return (TrackEvent(EventKind.COMMAND_REJECTED, stamp, 1, reason='too vague'),)
        return (TrackEvent(EventKind.COMMAND_ACCEPTED, stamp, 1),)

    def update(self, image, stamp):
        assert image.dtype == np.uint8 and image.ndim == 3
        self.updates.append(stamp)
        if int(round(stamp)) in self.bad_frames:
            raise InputError('image: expected a sharp frame')
        box, state, *candidate = self.script[self.k % len(self.script)]
        self.k += 1
        events = (TrackEvent(EventKind.LOST, stamp, 1),) if state == S.LOST else ()
        if self.acquire and box is not None and state == S.TRACKING and not self.acquired:
            self.acquired = True
            events = (TrackEvent(EventKind.ACQUIRED, stamp, 1, box_xywh=box),)
        return TrackResult(stamp=stamp, track_id=1, text='', state=state, box_xywh=box,
                           score=0.9 if box else 0.1, events=events,
                           candidate_xywh=candidate[0] if candidate else None,
                           candidate_score=0.2 if candidate else 0.0)


def make_sequence(root: pathlib.Path, name='seq', n=5, absent=(), corrupt=(), size=(40, 60)):
    d = root / name
    d.mkdir(parents=True)
    paths = []
    for i in range(n):
        p = d / f'{i + 1:08d}.png'
        if i in corrupt:
            p.write_bytes(b'not an image')
        else:
            img = np.full((*size, 3), 30 * i, np.uint8)
            img[10:20, 10:30] = (200, 120, 40)
            cv2.imwrite(str(p), img)
        paths.append(p)
    boxes = np.tile([10.0, 10.0, 20.0, 10.0], (n, 1))
    flags = np.zeros(n, bool)
    flags[list(absent)] = True
    boxes[flags] = np.nan
    return Sequence(name=name, dataset='test', text='the grey box', frame_paths=tuple(paths),
                    boxes_xywh=boxes, absent=flags)


GOOD = ((10.0, 10.0, 20.0, 10.0), S.TRACKING)
CFG = ev.EvalConfig(fps=1.0, prefetch=2)


def test_run_sequence_records_every_frame(tmp_path):
    seq = make_sequence(tmp_path, n=4)
    script = [GOOD, ((12.0, 10.0, 20.0, 10.0), S.TRACKING), (None, S.LOST), GOOD]
    trk = FakeTracker(script)
    run = ev.run_sequence(trk, seq, CFG)
    assert trk.commands == [('the grey box', 0.0, None)]   # language only, stamp of frame 0
    assert trk.updates == [0.0, 1.0, 2.0, 3.0] and trk.resets == 1
    assert run.boxes_xywh[1].tolist() == [12, 10, 20, 10]
    assert np.isnan(run.boxes_xywh[2]).all()
    assert run.states.tolist() == [S.TRACKING, S.TRACKING, S.LOST, S.TRACKING]
    assert run.drop_reasons == {}
    kinds = [(f, e.kind) for f, e in run.events]
    assert kinds == [(0, EventKind.COMMAND_ACCEPTED), (2, EventKind.LOST)]
    assert (run.times_s >= 0).all() and run.wall_s >= np.sum(run.times_s)


def test_init_with_box_passes_first_ground_truth(tmp_path):
    trk = FakeTracker([GOOD])
    ev.run_sequence(trk, make_sequence(tmp_path, n=2), ev.EvalConfig(init='nl+box'))
    assert trk.commands[0][2] == (10.0, 10.0, 20.0, 10.0)


@pytest.mark.parametrize('prefetch', [0, 3])
def test_corrupt_frame_and_rejected_input_are_dropped_with_reason(tmp_path, prefetch):
    seq = make_sequence(tmp_path, n=6, corrupt=(2,))
    trk = FakeTracker([GOOD], bad_frames=(4,))
    run = ev.run_sequence(trk, seq, ev.EvalConfig(fps=1.0, prefetch=prefetch))
    assert sorted(run.drop_reasons) == [2, 4]
    assert str(seq.frame_paths[2]) in run.drop_reasons[2]
    assert 'input rejected' in run.drop_reasons[4]
    assert len(trk.updates) == 5        # frame 2 never reached the tracker
    assert run.states[2] == ev.NO_STATE and np.isnan(run.scores[2])
    block = ev.score_run(run, CFG).block
    assert block['frames_dropped'] == 2 and block['frames_scored'] == 4
    # Dropped frames fail: 4 of 6 frames perfect -> success 4/6 at every threshold but 1.
    assert block['auc'] == pytest.approx(4 / 6 * 20 / 21)


def test_rejected_command_drops_all_frames(tmp_path):
    seq = make_sequence(tmp_path, n=3)
    run = ev.run_sequence(FakeTracker([GOOD], reject_text='the grey box'), seq, CFG)
    assert len(run.drop_reasons) == 3
    assert all('too vague' in r for r in run.drop_reasons.values())
    assert ev.score_run(run, CFG).block['auc'] == 0.0


def test_batch_skips_broken_sequence_and_goes_on(tmp_path):
    good = make_sequence(tmp_path, 'a', n=3)

    def broken():
        raise InputError(f'{tmp_path}/b/groundtruth.txt: 2 lines for 3 frames')

    class Crashing(FakeTracker):
        def update(self, image, stamp):
            if self.commands[-1][0] == 'boom':
                raise TrackerError('model exploded')
            return super().update(image, stamp)

    boom = make_sequence(tmp_path, 'c', n=2)
    boom = Sequence(name='c', dataset='t', text='boom', frame_paths=boom.frame_paths,
                    boxes_xywh=boom.boxes_xywh, absent=boom.absent)
    logged = []
    runs, skipped = ev.run_batch(
        Crashing([GOOD]), [ev.LazySequence('b', broken), good, boom,
                           ev.LazySequence('d', lambda: make_sequence(tmp_path, 'd', n=2))],
        CFG, progress=False, log=logged.append)
    assert [r.name for r in runs] == ['a', 'd']
    assert [s[0] for s in skipped] == ['b', 'c']
    assert 'groundtruth.txt' in skipped[0][1] and len(logged) == 2


def test_results_files_round_trip(tmp_path):
    seq = make_sequence(tmp_path, n=4, corrupt=(3,))
    run = ev.run_sequence(FakeTracker([((1.25, 2.5, 3.0, 4.0), S.TRACKING), (None, S.LOST)]),
                          seq, CFG)
    paths = ev.write_results(run, tmp_path / 'res')
    boxes = ev.read_boxes(paths['boxes'])
    assert boxes.shape == (4, 4)
    assert boxes[0].tolist() == [1.25, 2.5, 3.0, 4.0] and boxes[2].tolist() == [1.25, 2.5, 3, 4]
    assert np.isnan(boxes[1]).all() and np.isnan(boxes[3]).all()
    assert '\t' in paths['boxes'].read_text().splitlines()[0]     # pytracking writes tabs
    rows = [r.split('\t') for r in paths['frames'].read_text().splitlines()]
    assert len(rows) == 5 and rows[0][2] == 'status'
    assert rows[2][3] == 'LOST' and rows[4][2] == 'dropped' and 'unreadable' in rows[4][6]
    assert len(paths['time'].read_text().split()) == 4


def test_candidates_are_scored_for_overlap_but_claim_nothing(tmp_path):
    box = GOOD[0]
    seq = make_sequence(tmp_path, n=4, absent=(2,))
    # grounding with a right candidate, held, searching (target absent), searching (back)
    script = [(None, S.GROUNDING, box), GOOD, (None, S.SEARCHING, box),
              (None, S.SEARCHING, box)]
    run = ev.run_sequence(FakeTracker(script), seq, CFG)
    assert run.boxes_xywh[0].tolist() == list(box) and run.scores[0] == pytest.approx(0.2)
    assert run.held.tolist() == [False, True, False, False]
    back = ev.run_from_results(seq, ev.write_results(run, tmp_path / 'res')['boxes'].parent)
    for r in (run, back):
        auc = {c: ev.score_run(r, ev.EvalConfig(convention=c)).block['auc']
               for c in ('pytracking', 'absent-aware')}
        # pytracking: frames 0, 1, 3 are exact (IoU 1 > t for t < 1), frame 2 absent
        assert auc['pytracking'] == pytest.approx(3 / 4 * 20 / 21)
        # absent-aware: only frame 1 is a right claim and frame 2 a right "absent"
        assert auc['absent-aware'] == pytest.approx(2 / 4 * 20 / 21)
        block = ev.score_run(r, CFG).block
        assert block['absent_counts'] == {'tp': 1, 'fp': 2, 'fn': 0, 'tn': 1}


def test_read_boxes_accepts_commas_and_names_bad_file(tmp_path):
    p = tmp_path / 'gt.txt'
    p.write_text('1,2,3,4\n5,6,7,8\n')
    assert ev.read_boxes(p).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    p.write_text('1,2,3\n')
    with pytest.raises(InputError, match='gt.txt: line 1'):
        ev.read_boxes(p)
    with pytest.raises(InputError, match='missing.txt'):
        ev.read_boxes(tmp_path / 'missing.txt')


def test_summarize_accounts_for_every_frame(tmp_path):
    a = make_sequence(tmp_path, 'a', n=5, absent=(2, 3))
    b = make_sequence(tmp_path, 'b', n=3, corrupt=(1,))
    # Tracker: good, good, lost, lost, good (repeats) -> on 'a' it says absent exactly right.
    script = [GOOD, GOOD, (None, S.LOST), (None, S.LOST), GOOD]
    runs, skipped = ev.run_batch(FakeTracker(script), [a, b], CFG, progress=False)
    for conv, scored, excluded in (('pytracking', 7, 0), ('tnl2k', 5, 2)):
        cfg = ev.EvalConfig(fps=1.0, convention=conv)
        s = ev.summarize(runs, cfg, skipped=[('z', 'broken')])
        assert s['frames_total'] == 8
        assert (s['frames_scored'], s['frames_dropped'], s['frames_excluded']) == \
            (scored, 1, excluded)
        assert set(s['sequences']) == {'a', 'b'} and s['sequences_total'] == 3
    s = ev.summarize(runs, CFG)
    # 'a' pytracking: 3 of 5 frames succeed; 'b': 2 of 3 (one dropped). Mean of sequences.
    assert s['precision20'] == pytest.approx((3 / 5 + 2 / 3) / 2)
    # Absent: 'a' frames 2, 3 predicted and true, 0, 1, 4 visible and held; 'b' frame 1 is
    # dropped (not counted), the tracker's next two answers (frames 0, 2) are GOOD.
    assert s['absent_counts'] == {'tp': 2, 'fp': 0, 'fn': 0, 'tn': 5}
    assert s['absent_f1'] == 1.0
    assert s['sequences']['a']['loss_delay']['detected'] == 1
    assert s['sequences']['a']['reacquire_delay']['within10'] == 1.0
    json.dumps(s)   # plain data


def test_eval_config_validates():
    with pytest.raises(ConfigError, match='init'):
        ev.EvalConfig(init='box')
    with pytest.raises(ConfigError, match='fps'):
        ev.EvalConfig(fps=0)


def test_real_tiny_tracker_runs_through_the_runner(tmp_path):
    trk = pytest.importorskip('nl_tracker_ros.tracker')
    tracker = trk.build_tracker(trk.TrackerConfig(preset='jointnlt-tiny',
                                                  random_weights=True), 'cpu')
    seq = make_sequence(tmp_path, n=5, size=(96, 128))
    run = ev.run_sequence(tracker, seq, CFG)
    assert run.drop_reasons == {}
    assert run.events[0][1].kind == EventKind.COMMAND_ACCEPTED
    assert [S(s) for s in run.states[:1]] in ([S.GROUNDING], [S.TRACKING])
    held = ~np.isnan(run.boxes_xywh).any(axis=1)
    assert held.any()
    x, y, w, h = run.boxes_xywh[held].T
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= 128 + 1e-6).all() \
        and (y + h <= 96 + 1e-6).all()
    s = ev.summarize([run], CFG)
    assert s['frames_total'] == 5 and s['frames_dropped'] == 0
    assert len(ev.read_boxes(ev.write_results(run, tmp_path / 'r')['boxes'])) == 5


def write_lasot(root: pathlib.Path, name: str, n: int, gt_lines: int | None = None):
    d = root / name
    (d / 'img').mkdir(parents=True)
    for i in range(n):
        img = np.full((48, 64, 3), 60, np.uint8)
        img[10:20, 10:30] = 220
        cv2.imwrite(str(d / 'img' / f'{i + 1:08d}.jpg'), img)
    lines = ['10,10,20,10'] * (n if gt_lines is None else gt_lines)
    (d / 'groundtruth.txt').write_text('\n'.join(lines) + '\n')
    (d / 'full_occlusion.txt').write_text(','.join(['0'] * n) + '\n')
    (d / 'out_of_view.txt').write_text(','.join(['0'] * n) + '\n')
    (d / 'nlp.txt').write_text('the bright bar\n')


def _cli(argv, monkeypatch, tracker_factory):
    from nl_tracker_ros.commands import _tracking
    monkeypatch.setattr(_tracking, 'make_tracker',
                        lambda args, recovery: tracker_factory(recovery))
    import argparse
    from nl_tracker_ros.commands import eval as eval_cmd, track as track_cmd
    module = {'eval': eval_cmd, 'track': track_cmd}[argv[0]]
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv[1:]))


def test_eval_command_reports_broken_sequence_and_compares_configurations(
        tmp_path, monkeypatch, capsys):
    pytest.importorskip('nl_tracker_ros.inputs.datasets')
    write_lasot(tmp_path / 'data', 'good', 4)
    write_lasot(tmp_path / 'data', 'short', 4, gt_lines=3)
    off_box = ((40.0, 30.0, 10.0, 10.0), S.TRACKING)
    rc = _cli(['eval', str(tmp_path / 'data'), '--out', str(tmp_path / 'out'), '--json',
               str(tmp_path / 'r.json'), '--recovery', 'both', '--no-progress', '--worst', '1'],
              monkeypatch, lambda on: FakeTracker([GOOD if on else off_box]))
    assert rc == 0
    data = json.loads((tmp_path / 'r.json').read_text())
    assert set(data['configurations']) == {'recovery-on', 'recovery-off'}
    on, off = data['configurations']['recovery-on'], data['configurations']['recovery-off']
    assert on['auc'] > off['auc'] and data['auc'] == on['auc']
    assert list(on['sequences']) == ['good'] and on['frames_total'] == 4
    skip = on['skipped'][0]
    assert skip['name'] == 'short' and 'groundtruth.txt' in skip['reason']
    out = capsys.readouterr().out
    assert 'recovery-off' in out and 'short' in out
    assert (tmp_path / 'out' / 'results' / 'recovery-off' / 'good.txt').is_file()
    assert (tmp_path / 'out' / 'success.png').is_file()


def test_eval_command_min_auc_sets_exit_status(tmp_path, monkeypatch):
    pytest.importorskip('nl_tracker_ros.inputs.datasets')
    write_lasot(tmp_path / 'data', 'good', 3)
    argv = ['eval', str(tmp_path / 'data'), '--out', str(tmp_path / 'o'), '--no-progress',
            '--worst', '0', '--min-auc', '0.99']
    assert _cli(argv, monkeypatch, lambda on: FakeTracker([GOOD])) == 3


def test_track_command_on_image_folder(tmp_path, monkeypatch, capsys):
    make_sequence(tmp_path, 'clip', n=4)
    script = [GOOD, GOOD, (None, S.LOST), GOOD]
    made = []

    def factory(on):
        made.append((on, FakeTracker(script, acquire=True)))
        return made[-1][1]

    rc = _cli(['track', str(tmp_path / 'clip'), '--text', 'the grey box', '--box', '1,2,3,4',
               '--recovery', 'off', '--out', str(tmp_path / 'o')], monkeypatch, factory)
    assert rc == 0 and [on for on, _ in made] == [False]
    assert made[0][1].commands == [('the grey box', 0.0, (1.0, 2.0, 3.0, 4.0))]
    boxes = ev.read_boxes(tmp_path / 'o' / 'clip.txt')
    assert boxes.shape == (4, 4) and np.isnan(boxes[2]).all()
    assert (tmp_path / 'o' / 'clip_overlay.mp4').is_file()
    out = capsys.readouterr().out
    assert 'LOST' in out and '4/4 frames tracked' in out
    assert 'target acquired at frame 0, held on 3 of 4 frames' in out
    assert 'events: COMMAND_ACCEPTED 1, ACQUIRED 1, LOST 1' in out


def test_track_command_says_when_the_target_was_never_acquired(tmp_path, monkeypatch, capsys):
    make_sequence(tmp_path, 'clip', n=3)
    rc = _cli(['track', str(tmp_path / 'clip'), '--text', 'the grey box', '--no-video',
               '--no-progress', '--out', str(tmp_path / 'o')], monkeypatch,
              lambda on: FakeTracker([(None, S.GROUNDING)]))
    from nl_tracker_ros.commands.track import NEVER_ACQUIRED
    assert rc == NEVER_ACQUIRED == 3
    captured = capsys.readouterr()
    assert 'target never acquired' in captured.out and '3/3 frames tracked' in captured.out
    err = captured.err.strip().splitlines()
    assert err == ['nl-tracker track: the target was never acquired: "the grey box" matched '
                   'nothing in 3 frames']


def test_track_command_scores_a_bag_with_ground_truth(tmp_path, monkeypatch, capsys):
    bags = pytest.importorskip('nl_tracker_ros.inputs.bags')
    pytest.importorskip('nl_tracker_ros.inputs.datasets')
    write_lasot(tmp_path / 'data', 'clip', 4)
    from nl_tracker_ros.inputs import read_dataset
    bags.write_bag(read_dataset(tmp_path / 'data')[0][0], tmp_path / 'clip_bag')
    rc = _cli(['track', str(tmp_path / 'clip_bag'), '--no-video', '--no-progress',
               '--out', str(tmp_path / 'o')], monkeypatch,
              lambda on: FakeTracker([GOOD], acquire=True))
    assert rc == 0
    out = capsys.readouterr().out
    # a perfect box succeeds on 20 of the 21 thresholds (IoU strictly above each)
    assert 'score against the recorded ground truth: success AUC 95.2, precision@20 100.0' \
        in out


def test_track_command_checks_the_box_against_the_first_frame_before_any_model_work(
        tmp_path, monkeypatch):
    make_sequence(tmp_path, 'clip', n=2, size=(40, 60))

    def no_model(on):
        raise AssertionError('the model was built for a box outside the frame')
    with pytest.raises(InputError, match=r'^--box: \(50, 30, 20, 20\) extends outside the '
                                         r'60x40 image$'):
        _cli(['track', str(tmp_path / 'clip'), '--text', 'the grey box', '--box',
              '50,30,20,20'], monkeypatch, no_model)


@pytest.mark.parametrize('box, why', [
    ('nan,1,2,3', 'expected finite numbers'), ('1,2,0,3', 'expected positive width and height'),
    ('1,2,-4,3', 'expected positive width and height'), ('-1,2,4,3', 'non-negative top-left'),
    ('1,2,3', 'expected 4 numbers'), ('a,b,c,d', "expected numbers, got 'a,b,c,d'")])
def test_track_command_refuses_a_bad_box_when_parsing(tmp_path, capsys, box, why):
    from nl_tracker_ros.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(['track', str(tmp_path), '--text', 'x', f'--box={box}'])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith('nl-tracker track: error: argument --box: ') and why in last
    assert last.count('--box') == 1


def test_a_preset_without_weights_is_refused_in_one_line(tmp_path, capsys):
    from nl_tracker_ros.cli import main
    make_sequence(tmp_path, 'clip', n=2)
    assert main(['track', str(tmp_path / 'clip'), '--text', 'x', '--preset', 'jointnlt-base',
                 '--device', 'cpu', '--no-video']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('nl-tracker track: tracker.preset jointnlt-base: '
                                               'no weights ship with this preset')
    assert 'tracker.random_weights' in err[0] and 'JointNLT_ep0300.pth.tar' in err[0]


def test_bag_and_folder_of_the_same_sequence_score_the_same(tmp_path, monkeypatch):
    bags = pytest.importorskip('nl_tracker_ros.inputs.bags')
    pytest.importorskip('nl_tracker_ros.inputs.datasets')
    write_lasot(tmp_path / 'data', 'clip', 5)
    from nl_tracker_ros.inputs import read_dataset
    seq = read_dataset(tmp_path / 'data')[0][0]
    bags.write_bag(seq, tmp_path / 'clip_bag')
    script = [GOOD, ((14.0, 10.0, 20.0, 10.0), S.TRACKING), (None, S.LOST)]
    reports = []
    for src in (tmp_path / 'data', tmp_path / 'clip_bag'):
        out = tmp_path / f'out_{src.name}'
        assert _cli(['eval', str(src), '--out', str(out), '--no-progress', '--worst', '0'],
                    monkeypatch, lambda on: FakeTracker(script)) == 0
        reports.append(json.loads((out / 'report.json').read_text()))
    folder, bag = reports
    for key in ('auc', 'precision20', 'norm_precision', 'absent_f1', 'frames_total',
                'frames_scored', 'frames_dropped'):
        assert folder[key] == bag[key], key
    assert bag['frames_total'] == 5


def test_corrupt_bag_is_skipped_with_reason_and_batch_goes_on(tmp_path, monkeypatch):
    pytest.importorskip('nl_tracker_ros.inputs.bags')
    (tmp_path / 'b2').mkdir()
    (tmp_path / 'b2' / 'metadata.yaml').write_text('not: a bag\n')
    write_lasot(tmp_path / 'data', 'good', 3)
    rc = _cli(['eval', str(tmp_path / 'b2'), str(tmp_path / 'data'), '--out',
               str(tmp_path / 'o'), '--no-progress', '--worst', '0'],
              monkeypatch, lambda on: FakeTracker([GOOD]))
    assert rc == 0
    block = json.loads((tmp_path / 'o' / 'report.json').read_text())[
        'configurations']['recovery-on']
    assert block['skipped'][0]['name'] == 'b2' and 'b2' in block['skipped'][0]['reason']
    assert list(block['sequences']) == ['good']


def test_open_input_kinds(tmp_path):
    write_lasot(tmp_path, 'seq', 3)
    src = open_input(tmp_path / 'seq')
    assert (src.name, src.text, len(src)) == ('seq', 'the bright bar', 3)
    assert src.load_frame(0).shape == (48, 64, 3)
    assert open_input(tmp_path / 'seq', text='other').text == 'other'
    video = tmp_path / 'clip.mp4'
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10.0, (64, 48))
    for i in range(4):
        w.write(np.full((48, 64, 3), 40 * i, np.uint8))
    w.release()
    v = open_input(video, 'x')
    assert len(v) == 4 and v.stamps[1] == pytest.approx(0.1)
    assert v.load_frame(3).shape == (48, 64, 3) and v.load_frame(1).shape == (48, 64, 3)
    (tmp_path / 'notes.txt').write_text('hi')
    with pytest.raises(InputError, match='notes.txt'):
        open_input(tmp_path / 'notes.txt')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(InputError, match='empty'):
        open_input(tmp_path / 'empty')


def test_written_results_score_the_same_when_read_back(tmp_path, monkeypatch):
    pytest.importorskip('nl_tracker_ros.inputs.datasets')
    write_lasot(tmp_path / 'data', 'a', 6)
    script = [GOOD, ((14.0, 10.0, 20.0, 10.0), S.TRACKING), (None, S.LOST)]
    assert _cli(['eval', str(tmp_path / 'data'), '--out', str(tmp_path / 'o1'), '--no-progress',
                 '--worst', '0'], monkeypatch, lambda on: FakeTracker(script)) == 0
    # A foreign tracker's pytracking file: integer boxes, tabs, no frames table.
    foreign = tmp_path / 'other'
    foreign.mkdir()
    (foreign / 'a.txt').write_text('10\t10\t20\t10\n' * 3 + '40\t30\t10\t10\n' * 3)
    assert _cli(['eval', str(tmp_path / 'data'), '--out', str(tmp_path / 'o2'), '--no-progress',
                 '--worst', '0', '--no-tracker', '--results',
                 f'mine={tmp_path / "o1" / "results" / "recovery-on"}',
                 '--results', f'other={foreign}'], monkeypatch, lambda on: None) == 0
    first = json.loads((tmp_path / 'o1' / 'report.json').read_text())[
        'configurations']['recovery-on']
    again = json.loads((tmp_path / 'o2' / 'report.json').read_text())
    mine, other = again['configurations']['mine'], again['configurations']['other']
    for key in ('auc', 'precision20', 'absent_f1', 'frames_scored', 'absent_counts'):
        assert mine[key] == first[key], key
    assert other['precision20'] == pytest.approx(0.5)    # 3 of 6 frames on target
