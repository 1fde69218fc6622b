"""Lint as ament does: flake8 with 99 columns over the package, launch files and tests."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_flake8_clean():
    proc = subprocess.run([sys.executable, '-m', 'flake8', '--max-line-length', '99',
                           'nl_tracker_ros', 'launch', 'test', 'setup.py'],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
