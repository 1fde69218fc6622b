"""Thread policy: one thread for the compact model and on a GPU, more cores for the base model."""
import os
import subprocess
import sys

import pytest
import torch

from nl_tracker_ros import threads
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.tracker import TrackerConfig


def test_automatic_choice_by_model_and_device(monkeypatch):
    monkeypatch.setattr(threads, 'available_cores', lambda: 8)
    assert threads.auto_threads('jointnlt-compact', 'cpu') == 1
    assert threads.auto_threads('jointnlt-tiny', 'cpu') == 1
    assert threads.auto_threads('jointnlt-base', 'cpu') == threads.MAX_AUTO_THREADS == 4
    assert threads.auto_threads('jointnlt-base', 'cuda') == 1
    monkeypatch.setattr(threads, 'available_cores', lambda: 2)
    assert threads.auto_threads('jointnlt-base', 'cpu') == 2


def test_apply_sets_torch_and_returns_the_count():
    before = torch.get_num_threads()
    try:
        assert threads.apply_threads(0, 'jointnlt-compact', 'cpu') == 1
        assert torch.get_num_threads() == 1
        assert threads.apply_threads(2, 'jointnlt-compact', 'cpu') == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_negative_threads_are_refused():
    with pytest.raises(ConfigError, match='tracker.threads: expected 0'):
        TrackerConfig(threads=-1)


def test_importing_the_package_asks_openmp_for_sleeping_waits_unless_set():
    code = 'import os, nl_tracker_ros; print(os.environ["OMP_WAIT_POLICY"])'
    env = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == 'PASSIVE'
    out = subprocess.run([sys.executable, '-c', code], env=dict(env, OMP_WAIT_POLICY='ACTIVE'),
                         capture_output=True, text=True)
    assert out.stdout.strip() == 'ACTIVE'
