"""Everything a tracker can be run over, as sequences: datasets on disk, folders, videos, bags.

A sequence is any object shaped like :class:`Sequence` (``name``, ``text``, ``boxes_xywh``,
``absent``, ``len()``, ``load_frame(i)``; optional ``dataset`` and ``stamps``).

- ``sequence``: :class:`Sequence`, annotated frames on disk.
- ``datasets``: readers for LaSOT, TNL2K, OTB99-Lang and generated scenes.
- ``plain``: an image folder or a video without annotations.
- ``bags``: rosbag2 read and write through the ``rosbags`` library (imported on first use, by
  ``open_bag`` or ``from nl_tracker_ros.inputs import bags``).
- ``openers``: ``open_input`` (any of the above by its path), ``is_bag``, ``open_bag``.
"""
from nl_tracker_ros.inputs.datasets import (Skip, detect_layout, read_dataset, read_lasot,
                                            read_otb99_lang, read_scenes, read_tnl2k)
from nl_tracker_ros.inputs.openers import is_bag, open_bag, open_input
from nl_tracker_ros.inputs.plain import IMAGE_EXTS, VIDEO_EXTS, FrameFolder, VideoFrames
from nl_tracker_ros.inputs.sequence import Sequence

__all__ = ['IMAGE_EXTS', 'VIDEO_EXTS', 'FrameFolder', 'Sequence', 'Skip', 'VideoFrames',
           'detect_layout', 'is_bag', 'open_bag', 'open_input', 'read_dataset', 'read_lasot',
           'read_otb99_lang', 'read_scenes', 'read_tnl2k']
