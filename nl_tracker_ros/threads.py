"""How many CPU threads torch and OpenCV use, chosen for a machine shared with other processes.

torch's intra-op threads wait for each other at the end of every parallel region. When another
process holds one of the cores, the thread waiting for it stalls all the others: on a busy
2-core machine two threads of the compact model ran at 0.17-0.38 of their quiet speed, and two
trackers at once at 0.26 of one (``python -m nl_tracker_ros.benchmarks.contention``; figures in
docs/results.md). So:

- the compact model (and the tiny test model) runs on one thread, where no thread ever waits
  for another; through ``nl-tracker track`` it was even faster on one thread than on two on a
  quiet machine (23-26 against 17-18 fps);
- the base model, whose large matrix products do gain from threads, gets every core this
  process may use, up to :data:`MAX_AUTO_THREADS`;
- on a GPU, one CPU thread is enough for the crops and the bookkeeping;
- waiting threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, set by the package's
  ``__init__`` before torch loads OpenMP, unless the environment already sets it), so a
  descheduled thread does not keep a spinning partner from the core it needs; it cost the base
  model nothing measurable on a quiet machine. (It would cost the compact model on two threads:
  another reason for one.)

``tracker.threads`` (``--threads``) overrides the choice; 0 means automatic.
"""
from __future__ import annotations

import os

MAX_AUTO_THREADS = 4
ONE_THREAD_PRESETS = frozenset({'jointnlt-compact', 'jointnlt-tiny'})


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, as taskset or a container sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # not Linux
        return os.cpu_count() or 1


def auto_threads(preset: str, device_type: str) -> int:
    """The thread count for ``preset`` on a ``device_type`` ('cpu', 'cuda') device."""
    if device_type != 'cpu' or preset in ONE_THREAD_PRESETS:
        return 1
    return max(1, min(MAX_AUTO_THREADS, available_cores()))


def apply_threads(threads: int, preset: str, device_type: str) -> int:
    """Set torch's and OpenCV's thread counts (``threads``, or automatic when 0); returns it.

    The counts are per process: the last tracker built in a process decides them.
    """
    import cv2
    import torch

    n = threads or auto_threads(preset, device_type)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n
