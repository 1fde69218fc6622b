"""Readers for the published layouts of LaSOT, TNL2K and OTB99-Lang, and for generated scenes.

Every reader returns ``(sequences, skipped)``: the sequences that could be read, and one
``Skip(path, reason)`` per sequence that could not (empty language file, fewer ground-truth
lines than frames, missing frames, unreadable numbers). Skips are also logged as warnings, so
a batch goes on and says why each sequence was left out. ``read_dataset(folder)`` reads
whatever of these layouts the folder holds.

Layouts (boxes are x, y, w, h in pixels; absent frames get NaN boxes where the file has a zero
or NaN box):

- LaSOT: ``[<class>/]<seq>/img/00000001.jpg``, ``groundtruth.txt``, ``full_occlusion.txt``,
  ``out_of_view.txt`` (one comma-separated line of 0/1 each), ``nlp.txt``.
- Generated scenes (``nl-tracker scenes``): the LaSOT layout plus ``meta.json``.
- TNL2K: ``[<subset>/]<seq>/imgs/*.jpg|png``, ``groundtruth.txt``, ``language.txt``; frames
  are absent where the box is zero or NaN.
- OTB99-Lang: ``OTB_videos/<Seq>/img/0001.jpg``, ``groundtruth_rect[.N].txt`` (comma, tab or
  space separated) and ``OTB_query_{train,test}/<Seq>.txt``.
"""
from __future__ import annotations

import logging
import pathlib
import re
from typing import NamedTuple

import numpy as np

from nl_tracker_ros.errors import InputError
from nl_tracker_ros.inputs.sequence import Sequence

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
# OTB sequences whose ground truth starts later than the first image (OTB's own table).
OTB_START_FRAMES = {'BlurCar1': 247, 'BlurCar3': 3, 'BlurCar4': 18, 'David': 300,
                    'Diving': 1, 'Football1': 1, 'Freeman4': 1}


class Skip(NamedTuple):
    """A sequence left out, and why (one line)."""

    path: pathlib.Path
    reason: str


class _Defect(Exception):
    """A per-sequence problem: the sequence is skipped with this message."""


Result = tuple[list[Sequence], list[Skip]]


def read_dataset(root: str | pathlib.Path, require_text: bool = True) -> Result:
    """Read whatever dataset layout ``root`` holds (or ``root`` itself as one sequence).

    Raises InputError if the folder holds no recognisable sequence at all.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise InputError(f'dataset folder {root}: not found or not a directory')
    kind = detect_layout(root)
    if kind is None:
        raise InputError(f'dataset folder {root}: no LaSOT, TNL2K, OTB99-Lang or generated '
                         f'scene sequences found')
    reader = {'lasot': read_lasot, 'scenes': read_scenes, 'tnl2k': read_tnl2k,
              'otb99_lang': read_otb99_lang}[kind]
    return reader(root, require_text=require_text)


def detect_layout(root: pathlib.Path) -> str | None:
    """'lasot', 'scenes', 'tnl2k', 'otb99_lang' or None for the layout found in ``root``."""
    root = pathlib.Path(root)
    if (root / 'OTB_videos').is_dir():
        return 'otb99_lang'
    for d in _sequence_dirs(root):
        if (d / 'imgs').is_dir():
            return 'tnl2k'
        return 'scenes' if (d / 'meta.json').is_file() else 'lasot'
    return None


def _sequence_dirs(root: pathlib.Path) -> list[pathlib.Path]:
    """Sequence folders at ``root`` itself, one level down, or two (LaSOT class folders)."""
    def is_seq(d):
        has_images = (d / 'img').is_dir() or (d / 'imgs').is_dir()
        return (d / 'groundtruth.txt').is_file() and has_images
    if is_seq(root):
        return [root]
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if is_seq(child):
            found.append(child)
        elif (child / 'img').is_dir() or (child / 'imgs').is_dir():
            found.append(child)   # a sequence without ground truth: reported as a skip
        else:
            found += [g for g in sorted(p for p in child.iterdir() if p.is_dir())
                      if is_seq(g) or (g / 'img').is_dir() or (g / 'imgs').is_dir()]
    return found


def read_lasot(root: str | pathlib.Path, require_text: bool = True) -> Result:
    """Read LaSOT-layout sequences under ``root`` (flat or in class folders)."""
    return _read_all(pathlib.Path(root), 'lasot', _lasot_sequence, require_text)


def read_scenes(root: str | pathlib.Path, require_text: bool = True) -> Result:
    """Read sequences written by ``nl-tracker scenes`` (the LaSOT layout plus meta.json)."""
    return _read_all(pathlib.Path(root), 'scenes', _lasot_sequence, require_text)


def read_tnl2k(root: str | pathlib.Path, require_text: bool = True) -> Result:
    """Read TNL2K-layout sequences under ``root``."""
    return _read_all(pathlib.Path(root), 'tnl2k', _tnl2k_sequence, require_text)


def _read_all(root, dataset, build, require_text) -> Result:
    if not root.is_dir():
        raise InputError(f'dataset folder {root}: not found or not a directory')
    seqs, skips = [], []
    for d in _sequence_dirs(root):
        try:
            seqs.append(build(d, dataset, require_text))
        except _Defect as exc:
            _skip(skips, d, str(exc))
    return seqs, skips


def _skip(skips, path, reason):
    skips.append(Skip(path, reason))
    log.warning('skipping sequence %s: %s', path, reason)


def _lasot_sequence(d: pathlib.Path, dataset: str, require_text: bool) -> Sequence:
    frames = _numbered_frames(d / 'img', contiguous=True)
    boxes = _read_boxes(d / 'groundtruth.txt', len(frames))
    absent = _box_absent(boxes)
    for flag_file in ('full_occlusion.txt', 'out_of_view.txt'):
        if (d / flag_file).is_file():
            absent |= _read_flags(d / flag_file, len(frames))
    text = _read_text(d / 'nlp.txt', require_text)
    return _build(d.name, dataset, text, frames, boxes, absent)


def _tnl2k_sequence(d: pathlib.Path, dataset: str, require_text: bool) -> Sequence:
    frames = _numbered_frames(d / 'imgs', contiguous=False)
    boxes = _read_boxes(d / 'groundtruth.txt', len(frames))
    text = _read_text(d / 'language.txt', require_text)
    return _build(d.name, dataset, text, frames, boxes, _box_absent(boxes))


def read_otb99_lang(root: str | pathlib.Path, require_text: bool = True,
                    split: str = 'all') -> Result:
    """Read OTB99-Lang: ``OTB_videos/`` plus the ``OTB_query_train``/``OTB_query_test`` files.

    ``split`` is 'train', 'test' or 'all'; a video without a query file in the chosen split is
    skipped when ``require_text`` is set.
    """
    root = pathlib.Path(root)
    videos = root / 'OTB_videos'
    if not videos.is_dir():
        raise InputError(f'OTB99-Lang folder {root}: expected an OTB_videos/ folder')
    if split not in ('train', 'test', 'all'):
        raise InputError(f'OTB99-Lang split: expected train, test or all, got {split!r}')
    splits = ('train', 'test') if split == 'all' else (split,)
    query_dirs = [root / f'OTB_query_{s}' for s in splits]
    seqs, skips = [], []
    for d in sorted(p for p in videos.iterdir() if p.is_dir()):
        gt_files = sorted(d.glob('groundtruth_rect*.txt'))
        if not gt_files:
            _skip(skips, d, 'no groundtruth_rect.txt')
            continue
        for gt in gt_files:
            m = re.fullmatch(r'groundtruth_rect\.(\d+)\.txt', gt.name)
            name = f'{d.name}-{m.group(1)}' if m else d.name
            try:
                seqs.append(_otb_sequence(d, gt, name, query_dirs, require_text))
            except _Defect as exc:
                _skip(skips, gt if m else d, str(exc))
    return seqs, skips


def _otb_sequence(d, gt, name, query_dirs, require_text) -> Sequence:
    numbered = _numbered_frames(d / 'img', contiguous=False, with_numbers=True)
    boxes = _read_boxes(gt, None)
    n = len(boxes)
    if d.name in OTB_START_FRAMES:
        start = OTB_START_FRAMES[d.name]
        frames = [p for k, p in numbered if start <= k < start + n]
    else:
        frames = [p for _, p in numbered]
    if len(frames) != n:
        raise _Defect(f'{gt.name} has {n} lines for {len(frames)} frames in img/')
    candidates = [name, name.replace('-', '_'), d.name]
    text = ''
    for q in query_dirs:
        for c in candidates:
            if (q / f'{c}.txt').is_file():
                text = _read_text(q / f'{c}.txt', require_text)
                break
        if text:
            break
    if require_text and not text:
        raise _Defect(f'no language file {name}.txt in '
                      f'{" or ".join(q.name for q in query_dirs)}')
    return _build(name, 'otb99_lang', text, frames, boxes, _box_absent(boxes))


def _build(name, dataset, text, frames, boxes, absent) -> Sequence:
    boxes = boxes.copy()
    boxes[_box_absent(boxes)] = np.nan
    return Sequence(name, dataset, text, tuple(frames), boxes, absent)


def _numbered_frames(folder: pathlib.Path, contiguous: bool, with_numbers: bool = False):
    """Image files in ``folder`` sorted by the number in their name.

    With ``contiguous``, the numbers must run 1..N without gaps (a gap is a missing frame).
    """
    if not folder.is_dir():
        raise _Defect(f'no {folder.name}/ folder')
    items = []
    for p in folder.iterdir():
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        digits = re.findall(r'\d+', p.stem)
        if not digits:
            raise _Defect(f'{folder.name}/{p.name}: expected a frame number in the name')
        items.append((int(digits[-1]), p))
    if not items:
        raise _Defect(f'{folder.name}/ holds no images')
    items.sort()
    numbers = [k for k, _ in items]
    if len(set(numbers)) != len(numbers):
        raise _Defect(f'{folder.name}/: two images share a frame number')
    if contiguous and numbers != list(range(1, len(numbers) + 1)):
        missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
        shown = ', '.join(str(k) for k in missing[:5]) + (' ...' if len(missing) > 5 else '')
        raise _Defect(f'{folder.name}/: missing frame(s) {shown}' if missing else
                      f'{folder.name}/: frame numbers do not start at 1')
    return items if with_numbers else [p for _, p in items]


def _read_boxes(path: pathlib.Path, n_frames: int | None) -> np.ndarray:
    """(N, 4) boxes from a text file with comma, tab or space separated numbers per line."""
    if not path.is_file():
        raise _Defect(f'no {path.name}')
    rows = []
    with path.open('r', encoding='utf-8', errors='replace') as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = [p for p in re.split(r'[,\s]+', line) if p]
            try:
                values = [float(p) for p in parts]
            except ValueError:
                raise _Defect(f'{path.name} line {i}: expected 4 numbers, '
                              f'got {line[:40]!r}') from None
            if len(values) != 4:
                raise _Defect(f'{path.name} line {i}: expected 4 numbers, got {len(values)}')
            rows.append(values)
    if not rows:
        raise _Defect(f'{path.name} is empty')
    boxes = np.array(rows, dtype=np.float64)
    if n_frames is not None and len(boxes) != n_frames:
        fewer = 'fewer' if len(boxes) < n_frames else 'more'
        raise _Defect(f'{path.name} has {len(boxes)} lines for {n_frames} frames '
                      f'({fewer} boxes than frames)')
    return boxes


def _read_flags(path: pathlib.Path, n_frames: int) -> np.ndarray:
    """(N,) bool from a file of 0/1 values (one line comma-separated, or one per line)."""
    values = [v for v in re.split(r'[,\s]+', path.read_text(errors='replace')) if v]
    try:
        flags = np.array([int(float(v)) for v in values], dtype=np.int64) != 0
    except ValueError:
        raise _Defect(f'{path.name}: expected 0/1 values') from None
    if len(flags) != n_frames:
        raise _Defect(f'{path.name} has {len(flags)} values for {n_frames} frames')
    return flags


def _read_text(path: pathlib.Path, require_text: bool) -> str:
    text = ''
    if path.is_file():
        text = ' '.join(path.read_text(encoding='utf-8', errors='replace').split())
    if require_text and not text:
        raise _Defect(f'{path.name} is missing' if not path.is_file() else f'{path.name} is empty')
    return text


def _box_absent(boxes: np.ndarray) -> np.ndarray:
    """True where a box is NaN or has no area (datasets write 0,0,0,0 for absent frames)."""
    with np.errstate(invalid='ignore'):
        return ~np.all(np.isfinite(boxes), axis=1) | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
