"""The ``nl-tracker`` command as a shell sees it: exit statuses and what reaches stderr."""
import subprocess
import sys

from nl_tracker_ros.cli import BROKEN_PIPE


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    # `nl-tracker scenes ... | head -0`: the reader is gone before anything is written
    proc = subprocess.Popen([sys.executable, '-m', 'nl_tracker_ros.cli', 'scenes', '--out',
                             str(tmp_path), '--count', '1', '--frames', '2', '--size', '64x64'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == BROKEN_PIPE == 141
    assert 'Traceback' not in err and 'BrokenPipe' not in err and 'Exception' not in err


def test_help_lists_the_exit_statuses_of_track():
    out = subprocess.run([sys.executable, '-m', 'nl_tracker_ros.cli', 'track', '--help'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert 'exit status: 0 the target was acquired' in ' '.join(out.stdout.split())
