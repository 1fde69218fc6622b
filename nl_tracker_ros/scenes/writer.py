"""Write generated scenes in the LaSOT layout (plus meta.json), optionally as bags too.

Layout, read back by ``nl_tracker_ros.inputs.datasets``::

    DIR/<seq>/img/00000001.jpg ...   frames
    DIR/<seq>/groundtruth.txt        "x,y,w,h" per frame (0-based pixels; 0,0,0,0 where absent)
    DIR/<seq>/full_occlusion.txt     one line of 0/1 per frame, comma-separated
    DIR/<seq>/out_of_view.txt        same
    DIR/<seq>/nlp.txt                the description
    DIR/<seq>/meta.json              seed, recipe, description attributes, planned events
    DIR/bags/<seq>/                  rosbag2 of the sequence (with --bags)
    DIR/scenes.json                  the command's arguments and the list of sequences
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Callable

import cv2
import numpy as np

from nl_tracker_ros.config import to_dict
from nl_tracker_ros.errors import InputError
from nl_tracker_ros.inputs.sequence import Sequence
from nl_tracker_ros.scenes.generator import GENERATOR_VERSION, ScenePlan, plan_scene, \
    render_scene
from nl_tracker_ros.scenes.recipe import RecipeMix, get_mix


def plan_meta(plan: ScenePlan) -> dict:
    """The JSON-able description of a plan written to meta.json (no timestamps: reproducible)."""
    return {
        'generator_version': GENERATOR_VERSION,
        'name': plan.name, 'seed': plan.seed, 'index': plan.index,
        'recipe': to_dict(plan.recipe),
        'text': plan.text,
        'description': dataclasses.asdict(plan.description),
        'background': plan.background,
        'target': _spec_dict(plan.layers[plan.target].spec),
        'distractors': [_spec_dict(lay.spec) for lay in plan.layers if lay.role == 'distractor'],
        'first_frame': {'target': _seen_dict(plan.target_seen),
                        'others': [_seen_dict(s) for s in plan.seen]},
        'events': [dataclasses.asdict(e) for e in plan.events],
    }


def _seen_dict(s) -> dict:
    return dict(_spec_dict(s.spec), cx=round(s.cx, 2), cy=round(s.cy, 2), area=s.area)


def _spec_dict(spec) -> dict:
    return {'kind': spec.kind, 'colour': spec.colour, 'texture': spec.texture}


def write_scene(plan: ScenePlan, root: str | pathlib.Path) -> Sequence:
    """Render ``plan`` into ``root/<name>/`` and return it as a Sequence."""
    seq_dir = pathlib.Path(root) / plan.name
    img_dir = seq_dir / 'img'
    img_dir.mkdir(parents=True, exist_ok=True)
    for old in img_dir.glob('*.jpg'):  # a rerun with fewer frames must not leave stale ones
        old.unlink()
    quality = [cv2.IMWRITE_JPEG_QUALITY, plan.recipe.jpeg_quality]
    paths, boxes, absent, occl, oov = [], [], [], [], []
    for i, ft in enumerate(render_scene(plan)):
        path = img_dir / f'{i + 1:08d}.jpg'
        ok, buf = cv2.imencode('.jpg', cv2.cvtColor(ft.image, cv2.COLOR_RGB2BGR), quality)
        if not ok:
            raise InputError(f'scene {plan.name}: JPEG encoding failed for frame {i + 1}')
        path.write_bytes(buf.tobytes())
        paths.append(path)
        boxes.append(ft.box_xywh if ft.box_xywh is not None else (0, 0, 0, 0))
        absent.append(ft.absent)
        occl.append(int(ft.full_occlusion))
        oov.append(int(ft.out_of_view))
    (seq_dir / 'groundtruth.txt').write_text(''.join(f'{x},{y},{w},{h}\n'
                                                     for x, y, w, h in boxes))
    (seq_dir / 'full_occlusion.txt').write_text(','.join(map(str, occl)) + '\n')
    (seq_dir / 'out_of_view.txt').write_text(','.join(map(str, oov)) + '\n')
    (seq_dir / 'nlp.txt').write_text(plan.text + '\n')
    (seq_dir / 'meta.json').write_text(json.dumps(plan_meta(plan), indent=1) + '\n')
    arr = np.array(boxes, dtype=np.float64)
    absent_arr = np.array(absent, dtype=bool)
    arr[absent_arr] = np.nan
    return Sequence(plan.name, 'scenes', plan.text, tuple(paths), arr, absent_arr)


def generate(out: str | pathlib.Path, count: int, seed: int, preset: str | RecipeMix = 'train',
             width: int | None = None, height: int | None = None, frames: int | None = None,
             bags: str | None = None, compressed: bool = False, workers: int = 1,
             progress: Callable[[int, int, str], None] | None = None) -> list[Sequence]:
    """Generate ``count`` sequences of the ``preset`` mix into ``out``; returns them.

    ``preset`` is a preset name or a RecipeMix. Sequence ``i`` depends only on (seed, i) and
    the arguments, so the output is byte-identical for the same arguments (and any number of
    ``workers`` processes). ``bags`` is None or a storage ('sqlite3' or 'mcap'); ``compressed``
    bags carry the JPEG files as CompressedImage. ``progress`` is called as (done, count, name)
    after each sequence.
    """
    if count < 1:
        raise InputError(f'scene count: expected >= 1, got {count}')
    if workers < 1:
        raise InputError(f'scene workers: expected >= 1, got {workers}')
    mix = get_mix(preset) if isinstance(preset, str) else preset
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(out, mix, seed, i, width, height, frames, bags, compressed) for i in range(count)]
    seqs, index = [], []
    if workers == 1:
        results = map(_one, jobs)
    else:
        import multiprocessing
        pool = multiprocessing.get_context('spawn').Pool(min(workers, count))
        results = pool.imap(_one, jobs)
    try:
        for seq in results:
            seqs.append(seq)
            index.append({'name': seq.name, 'text': seq.text, 'frames': len(seq),
                          'absent_frames': int(seq.absent.sum())})
            if progress:
                progress(len(seqs), count, seq.name)
    except BaseException:
        if workers > 1:
            pool.terminate()
        raise
    if workers > 1:
        pool.close()
        pool.join()
    summary = {'generator_version': GENERATOR_VERSION, 'seed': seed, 'count': count,
               'preset': preset if isinstance(preset, str) else to_dict(preset),
               'width': width, 'height': height, 'frames': frames, 'bags': bags,
               'compressed': compressed, 'sequences': index}
    (out / 'scenes.json').write_text(json.dumps(summary, indent=1) + '\n')
    return seqs


def _one(job) -> Sequence:
    out, mix, seed, i, width, height, frames, bags, compressed = job
    recipe = mix.sample(np.random.default_rng([seed, i, 0]), width, height, frames)
    plan = plan_scene(recipe, seed, i)
    seq = write_scene(plan, out)
    if bags:
        from nl_tracker_ros.inputs.bags import write_bag
        bag = out / 'bags' / plan.name
        if bag.exists():
            _remove_tree(bag)
        write_bag(seq, bag, storage=bags, fps=recipe.fps, compressed=compressed)
    return seq


def _remove_tree(path: pathlib.Path) -> None:
    for p in sorted(path.rglob('*'), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    path.rmdir()


def timed_generate(*args, **kwargs) -> tuple[list[Sequence], float]:
    """``generate`` plus its wall time in seconds (for the command's summary line)."""
    t0 = time.perf_counter()
    seqs = generate(*args, **kwargs)
    return seqs, time.perf_counter() - t0
