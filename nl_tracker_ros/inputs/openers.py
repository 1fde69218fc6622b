"""Open any input by its path: an image folder, a dataset sequence folder, a video or a bag."""
from __future__ import annotations

import pathlib

from nl_tracker_ros.errors import InputError
from nl_tracker_ros.inputs.plain import VIDEO_EXTS, FrameFolder, VideoFrames


def is_bag(path: str | pathlib.Path) -> bool:
    """True for a rosbag2 folder (metadata.yaml) or a bare .db3 / .mcap file."""
    path = pathlib.Path(path)
    return (path.is_dir() and (path / 'metadata.yaml').is_file()) or \
        path.suffix.lower() in ('.db3', '.mcap')


def open_bag(path: str | pathlib.Path, text: str = ''):
    """A recorded bag as a sequence (frames, stamps, command, ground truth if recorded)."""
    try:
        from nl_tracker_ros.inputs import bags
    except ImportError:
        raise InputError(f'bag {path}: bag support (nl_tracker_ros.inputs.bags) is not '
                         f'available in this build') from None
    return bags.read_sequence(path, text=text)


def open_input(path: str | pathlib.Path, text: str = '', fps: float = 30.0):
    """An image folder, video file or bag as a sequence for ``run_sequence``.

    ``text`` replaces the command recorded in a bag when given. Folders and videos have no
    ground truth (all NaN); a bag's recorded ground truth comes along when it has one.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise InputError(f'input {path}: no such file or folder')
    if is_bag(path):
        return open_bag(path, text)
    if path.is_dir():
        # A LaSOT (img/, nlp.txt) or TNL2K (imgs/, language.txt) sequence folder, or images.
        for sub, lang in (('img', 'nlp.txt'), ('imgs', 'language.txt')):
            if (path / sub).is_dir():
                if not text and (path / lang).is_file():
                    text = ' '.join((path / lang).read_text(errors='replace').split())
                return FrameFolder(path / sub, text, name=path.name)
        return FrameFolder(path, text)
    if path.suffix.lower() in VIDEO_EXTS:
        return VideoFrames(path, text, fps)
    raise InputError(f'input {path}: expected an image folder, a video '
                     f'({", ".join(VIDEO_EXTS)}) or a rosbag2')
