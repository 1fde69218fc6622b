"""The main job end to end: ``nl-tracker demo`` with the shipped model, through the real node."""
import json
import subprocess
import sys


def test_demo_tracks_the_scene_through_the_node(tmp_path):
    # --min-auc 0: this checks that the mission runs end to end and finds the target; the
    # demo's own bar (--min-auc 0.5) judges the accuracy when a user runs it.
    proc = subprocess.run([sys.executable, '-m', 'nl_tracker_ros.cli', 'demo', '--out',
                           str(tmp_path), '--min-auc', '0'],
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, output
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['frames_total'] == 300
    assert report['frames_dropped'] == 0
    # Events are printed live, in order: the target is found before anything else happens.
    lines = proc.stdout.splitlines()
    acquired = [i for i, line in enumerate(lines) if 'ACQUIRED' in line]
    assert acquired, output
    assert (tmp_path / 'success.png').stat().st_size > 0
    assert 'FPS' in proc.stdout
