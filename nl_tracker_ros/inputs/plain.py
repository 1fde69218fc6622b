"""Unannotated inputs: an image folder or a video file seen as a sequence for the runner.

Both have the shape of :class:`nl_tracker_ros.inputs.Sequence` (``name``, ``text``,
``boxes_xywh`` all NaN, ``absent`` all False, ``len()``, ``load_frame(i)``), plus
``dataset = 'input'`` and ``stamps``.
"""
from __future__ import annotations

import pathlib
import threading

import numpy as np

from nl_tracker_ros.errors import InputError

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg')


class FrameFolder:
    """An image folder (sorted by name) as an unannotated sequence for ``run_sequence``."""

    dataset = 'input'
    stamps = None

    def __init__(self, folder: str | pathlib.Path, text: str = '', name: str = ''):
        folder = pathlib.Path(folder)
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not paths:
            raise InputError(f'input folder {folder}: expected image files '
                             f'({", ".join(IMAGE_EXTS)}), found none')
        self.name, self.text, self.frame_paths = name or folder.name, text, tuple(paths)
        self.boxes_xywh = np.full((len(paths), 4), np.nan)
        self.absent = np.zeros(len(paths), dtype=bool)

    def __len__(self) -> int:
        return len(self.frame_paths)

    def load_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB uint8."""
        import cv2
        bgr = cv2.imread(str(self.frame_paths[index]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f'cannot read image {self.frame_paths[index]}')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class VideoFrames:
    """A video file as an unannotated sequence; frames decode in order (seeks if asked not to).

    Stamps come from the container's frame rate (``fps`` when it has none).
    """

    dataset = 'input'

    def __init__(self, path: str | pathlib.Path, text: str = '', fps: float = 30.0):
        import cv2
        self.path = pathlib.Path(path)
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise InputError(f'video {self.path}: cannot open (missing file or no codec)')
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n <= 0:
            raise InputError(f'video {self.path}: expected at least one frame, found none')
        rate = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = rate if rate and rate > 0 else fps
        self.name, self.text = self.path.stem, text
        self.stamps = np.arange(n, dtype=np.float64) / self.fps
        self.boxes_xywh = np.full((n, 4), np.nan)
        self.absent = np.zeros(n, dtype=bool)
        self._next = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.absent)

    def load_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB uint8."""
        import cv2
        with self._lock:
            if index != self._next:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, bgr = self._cap.read()
            self._next = index + 1
        if not ok or bgr is None:
            raise InputError(f'video {self.path}: cannot decode frame {index}')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
