"""One annotated language-tracking sequence, whatever dataset or generator it came from."""
from __future__ import annotations

import dataclasses
import pathlib

import cv2
import numpy as np

from nl_tracker_ros.errors import InputError


@dataclasses.dataclass(frozen=True, eq=False)
class Sequence:
    """Frames on disk plus per-frame ground truth.

    ``boxes_xywh`` is (N, 4) float64 in pixels, NaN rows where the box is unknown; ``absent`` is
    (N,) bool, True where the target is not visible (full occlusion or out of view).
    """

    name: str
    dataset: str
    text: str
    frame_paths: tuple[pathlib.Path, ...]
    boxes_xywh: np.ndarray
    absent: np.ndarray

    def __post_init__(self):
        n = len(self.frame_paths)
        if self.boxes_xywh.shape != (n, 4):
            raise InputError(f'sequence {self.name}: expected ({n}, 4) boxes for {n} frames, '
                             f'got {self.boxes_xywh.shape}')
        if self.absent.shape != (n,):
            raise InputError(f'sequence {self.name}: expected {n} absent flags, '
                             f'got {self.absent.shape}')

    def __len__(self) -> int:
        return len(self.frame_paths)

    def load_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as an RGB uint8 (H, W, 3) array."""
        path = self.frame_paths[index]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f'sequence {self.name}: cannot read frame {path}')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
