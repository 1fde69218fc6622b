"""Shared fixtures: small dataset folders generated inside the tests, never downloaded."""
import json
import pathlib
import shutil

import pytest


def write_lasot(root: pathlib.Path, count: int = 4, seed: int = 4, frames: int = 40,
                size: tuple[int, int] = (160, 120)) -> pathlib.Path:
    """``count`` generated scenes rewritten as a plain LaSOT folder: ``<kind>/<kind>-N/``
    (class folders named after the target's kind), with no ``meta.json``, so that nothing the
    generator knows beyond LaSOT's own annotations is left."""
    from nl_tracker_ros.scenes import generate

    scenes = root.parent / (root.name + '-scenes')
    generate(scenes, count, seed, 'heldout', size[0], size[1], frames)
    for i, d in enumerate(sorted(p for p in scenes.iterdir() if p.is_dir())):
        kind = json.loads((d / 'meta.json').read_text())['target']['kind'].replace(' ', '')
        (d / 'meta.json').unlink()
        dest = root / kind / f'{kind}-{i + 1}'
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(d), str(dest))
    shutil.rmtree(scenes)
    return root


@pytest.fixture(scope='session')
def lasot_folder(tmp_path_factory) -> pathlib.Path:
    """A LaSOT-layout folder of 4 short sequences (160x120, 40 frames; in two of them the
    target is absent at times), shared by the tests that only read it."""
    return write_lasot(tmp_path_factory.mktemp('data') / 'LaSOT')
