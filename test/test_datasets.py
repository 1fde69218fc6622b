"""Dataset readers on hand-made tiny folders of each published layout, defects included."""
import logging

import cv2
import numpy as np
import pytest

from nl_tracker_ros.errors import InputError
from nl_tracker_ros.inputs import detect_layout, read_dataset, read_lasot, read_otb99_lang, \
    read_tnl2k


def _frames(folder, numbers, pattern='{:08d}.jpg', size=(24, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    for k in numbers:
        img = np.full((size[1], size[0], 3), (k * 40) % 256, np.uint8)
        cv2.imwrite(str(folder / pattern.format(k)), img)


def _lasot_seq(d, n=4, gt_lines=None, text='the white dog', skip_frame=None, flags=True):
    _frames(d / 'img', [k for k in range(1, n + 1) if k != skip_frame])
    boxes = [f'{k},{k + 1},10,8' for k in range(n)]
    boxes[2] = '0,0,0,0'          # LaSOT writes zero boxes for absent frames
    lines = boxes[:gt_lines] if gt_lines is not None else boxes
    (d / 'groundtruth.txt').write_text('\n'.join(lines) + '\n')
    if flags:
        occ = ['0'] * n
        occ[2] = '1'
        (d / 'full_occlusion.txt').write_text(','.join(occ))
        oov = ['0'] * n
        oov[3] = '1'
        (d / 'out_of_view.txt').write_text(','.join(oov))
    (d / 'nlp.txt').write_text(text)


@pytest.fixture
def lasot(tmp_path):
    root = tmp_path / 'LaSOT'
    _lasot_seq(root / 'dog' / 'dog-1')
    _lasot_seq(root / 'dog' / 'dog-2', text='  \n')
    _lasot_seq(root / 'cat' / 'cat-1', gt_lines=3)
    _lasot_seq(root / 'cat' / 'cat-2', skip_frame=2)
    return root


def test_lasot_reads_good_and_skips_each_defect(lasot, caplog):
    with caplog.at_level(logging.WARNING):
        seqs, skips = read_lasot(lasot)
    assert [s.name for s in seqs] == ['dog-1']
    s = seqs[0]
    assert s.dataset == 'lasot' and s.text == 'the white dog' and len(s) == 4
    assert s.frame_paths[0].name == '00000001.jpg'
    np.testing.assert_array_equal(s.boxes_xywh[0], [0, 1, 10, 8])
    assert np.isnan(s.boxes_xywh[2]).all()            # zero box -> unknown
    assert s.absent.tolist() == [False, False, True, True]   # occlusion / out-of-view flags
    assert s.load_frame(1).shape == (16, 24, 3)
    reasons = {p.name: r for p, r in skips}
    assert set(reasons) == {'dog-2', 'cat-1', 'cat-2'}
    assert 'nlp.txt is empty' in reasons['dog-2']
    assert 'groundtruth.txt has 3 lines for 4 frames' in reasons['cat-1']
    assert 'missing frame(s) 2' in reasons['cat-2']
    for name in reasons:                              # one clear line per skipped sequence
        assert any(name in rec.getMessage() for rec in caplog.records)


def test_lasot_without_language_requirement_and_flags(tmp_path):
    _lasot_seq(tmp_path / 'a', text='', flags=False)
    seqs, skips = read_lasot(tmp_path, require_text=False)
    assert not skips and seqs[0].text == ''
    assert seqs[0].absent.tolist() == [False, False, True, False]   # from the zero box


def test_lasot_bad_numbers_and_flag_count(tmp_path):
    _lasot_seq(tmp_path / 'a')
    (tmp_path / 'a' / 'groundtruth.txt').write_text('1,2,3,4\n1,2,x,4\n1,2,3,4\n1,2,3,4\n')
    _lasot_seq(tmp_path / 'b')
    (tmp_path / 'b' / 'out_of_view.txt').write_text('0,0,1')
    seqs, skips = read_lasot(tmp_path)
    reasons = {p.name: r for p, r in skips}
    assert not seqs
    assert 'line 2' in reasons['a'] and 'out_of_view.txt has 3 values for 4 frames' in reasons['b']


def test_tnl2k_layout(tmp_path):
    root = tmp_path / 'TNL2K_test'
    a = root / 'advSamp_Baseball_video_01'
    _frames(a / 'imgs', range(1, 4), pattern='{:05d}.png')
    (a / 'groundtruth.txt').write_text('1,2,5,6\n0,0,0,0\n3,4,5,6\n')
    (a / 'language.txt').write_text('the baseball player in white\n')
    b = root / 'empty_language'
    _frames(b / 'imgs', range(1, 3), pattern='{:05d}.png')
    (b / 'groundtruth.txt').write_text('1,2,5,6\n1,2,5,6\n')
    (b / 'language.txt').write_text('')
    assert detect_layout(root) == 'tnl2k'
    seqs, skips = read_tnl2k(root)
    assert [s.name for s in seqs] == ['advSamp_Baseball_video_01']
    s = seqs[0]
    assert s.dataset == 'tnl2k' and s.text == 'the baseball player in white'
    assert s.absent.tolist() == [False, True, False]
    assert [p.name for p in s.frame_paths] == ['00001.png', '00002.png', '00003.png']
    assert [p.name for p, _ in skips] == ['empty_language']
    assert 'language.txt is empty' in skips[0].reason
    # read_dataset finds the same thing.
    seqs2, skips2 = read_dataset(root)
    assert [s.name for s in seqs2] == ['advSamp_Baseball_video_01'] and len(skips2) == 1


@pytest.fixture
def otb(tmp_path):
    root = tmp_path / 'OTB99'
    v = root / 'OTB_videos'
    _frames(v / 'Biker' / 'img', range(1, 4), pattern='{:04d}.jpg')
    (v / 'Biker' / 'groundtruth_rect.txt').write_text('1\t2\t3\t4\n2\t3\t4\t5\n3 4 5 6\n')
    _frames(v / 'Jogging' / 'img', range(1, 3), pattern='{:04d}.jpg')
    (v / 'Jogging' / 'groundtruth_rect.1.txt').write_text('1,2,3,4\n1,2,3,4\n')
    (v / 'Jogging' / 'groundtruth_rect.2.txt').write_text('5,6,7,8\n5,6,7,8\n')
    # David's ground truth starts at image 300 (OTB's own frame table).
    _frames(v / 'David' / 'img', range(298, 303), pattern='{:04d}.jpg')
    (v / 'David' / 'groundtruth_rect.txt').write_text('1,1,4,4\n2,2,4,4\n')
    _frames(v / 'Short' / 'img', range(1, 5), pattern='{:04d}.jpg')
    (v / 'Short' / 'groundtruth_rect.txt').write_text('1,1,4,4\n2,2,4,4\n')
    (root / 'OTB_query_test').mkdir(parents=True)
    (root / 'OTB_query_train').mkdir(parents=True)
    (root / 'OTB_query_test' / 'Biker.txt').write_text('a man riding a bike\n')
    (root / 'OTB_query_train' / 'Jogging-1.txt').write_text('the woman on the left\n')
    (root / 'OTB_query_train' / 'David.txt').write_text('the face of the man\n')
    (root / 'OTB_query_train' / 'Short.txt').write_text('a short one\n')
    return root


def test_otb99_lang_layout(otb):
    assert detect_layout(otb) == 'otb99_lang'
    seqs, skips = read_otb99_lang(otb)
    by_name = {s.name: s for s in seqs}
    assert sorted(by_name) == ['Biker', 'David', 'Jogging-1']
    np.testing.assert_array_equal(by_name['Biker'].boxes_xywh[2], [3, 4, 5, 6])
    assert by_name['Biker'].text == 'a man riding a bike'
    assert [p.name for p in by_name['David'].frame_paths] == ['0300.jpg', '0301.jpg']
    np.testing.assert_array_equal(by_name['Jogging-1'].boxes_xywh[0], [1, 2, 3, 4])
    reasons = {p.name: r for p, r in skips}
    assert 'no language file Jogging-2.txt' in reasons['groundtruth_rect.2.txt']
    assert 'groundtruth_rect.txt has 2 lines for 4 frames' in reasons['Short']
    test_only, _ = read_otb99_lang(otb, split='test')
    assert [s.name for s in test_only] == ['Biker']
    with pytest.raises(InputError, match='split'):
        read_otb99_lang(otb, split='val')


def test_read_dataset_detects_and_rejects(lasot, tmp_path):
    seqs, skips = read_dataset(lasot)
    assert [s.name for s in seqs] == ['dog-1'] and len(skips) == 3
    one, _ = read_dataset(lasot / 'dog' / 'dog-1')      # a single sequence folder
    assert [s.name for s in one] == ['dog-1']
    (tmp_path / 'nothing' / 'here').mkdir(parents=True)
    with pytest.raises(InputError, match='nothing'):
        read_dataset(tmp_path / 'nothing')
    with pytest.raises(InputError, match='not found'):
        read_dataset(tmp_path / 'missing')
