"""`colcon build` of the package against the venv's ROS 2 wheels, and the installed tree works.

This is the route a ROS 2 workspace takes (src/nl_tracker_ros + colcon), so it checks what the
venv route does not: CMakeLists.txt installs the Python core, the executables, launch/ and
config/, and the generated messages merge with the core in one importable package.
Takes ~40 s (message generation and compilation).
"""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time

import pytest
from test_ros_install import check_launchable, resolve_launch_executable

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENV_BIN = pathlib.Path(sys.prefix) / 'bin'
SOURCES = ('CMakeLists.txt', 'package.xml', 'setup.py', 'setup.cfg', 'msg', 'launch', 'config',
           'nl_tracker_ros')

pytestmark = pytest.mark.skipif(
    not (VENV_BIN / 'colcon').exists() or shutil.which('cmake') is None,
    reason='colcon or cmake missing (run scripts/setup.sh)')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """Build a workspace holding a copy of this package; return its install prefix."""
    ws = tmp_path_factory.mktemp('ws')
    src = ws / 'src' / 'nl_tracker_ros'
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    env = dict(os.environ, PATH=f'{VENV_BIN}{os.pathsep}{os.environ.get("PATH", "")}',
               CMAKE_PREFIX_PATH=sys.prefix, AMENT_PREFIX_PATH=sys.prefix)
    cmd = [str(VENV_BIN / 'colcon'), '--log-base', str(ws / 'log'), 'build',
           '--base-paths', str(ws / 'src'), '--build-base', str(ws / 'build'),
           '--install-base', str(ws / 'install'), '--event-handlers', 'console_direct-',
           '--cmake-args', f'-DPython3_EXECUTABLE={sys.executable}', '-DBUILD_TESTING=OFF']
    proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        logs = sorted((ws / 'log').rglob('stdout_stderr.log'))
        detail = logs[-1].read_text()[-4000:] if logs else proc.stdout[-4000:]
        pytest.fail(f'colcon build failed:\n{proc.stderr[-2000:]}\n{detail}')
    return ws / 'install' / 'nl_tracker_ros'


def installed_env(prefix: pathlib.Path) -> dict:
    """The environment `source install/setup.bash` would give, over the venv's ROS wheels."""
    site = prefix / pathlib.Path(sysconfig.get_paths()['purelib']).relative_to(sys.prefix)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), env.get('PYTHONPATH', '')]).rstrip(os.pathsep),
        AMENT_PREFIX_PATH=f'{prefix}{os.pathsep}{sys.prefix}',
        LD_LIBRARY_PATH=os.pathsep.join([str(prefix / 'lib'), env.get('LD_LIBRARY_PATH', '')]),
        ROS_DOMAIN_ID=str(20 + (os.getpid() + 41) % 80), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
        OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    return env


def test_installed_tree_layout(installed):
    share = installed / 'share' / 'nl_tracker_ros'
    for rel in ('package.xml', 'launch/track.launch.py', 'config/tracker.yaml',
                'msg/TrackedTarget.msg', 'msg/TrackEvent.msg', 'msg/TrackerStatus.msg'):
        assert (share / rel).is_file(), rel
    assert (installed / 'share/ament_index/resource_index/packages/nl_tracker_ros').is_file()
    for exe in ('lib/nl_tracker_ros/tracker_node', 'bin/nl-tracker'):
        assert os.access(installed / exe, os.X_OK), exe
    site = installed / pathlib.Path(sysconfig.get_paths()['purelib']).relative_to(sys.prefix)
    pkg = site / 'nl_tracker_ros'
    # Our __init__ (extend_path) replaced the empty generated one.
    assert (pkg / '__init__.py').read_text() == (ROOT / 'nl_tracker_ros/__init__.py').read_text()
    assert (pkg / 'msg' / '__init__.py').is_file() and (pkg / 'ros' / 'node.py').is_file()


def test_installed_messages_import_and_serialize(installed):
    code = ('import nl_tracker_ros, nl_tracker_ros.msg as m, nl_tracker_ros.ros.node as n\n'
            'from rclpy.serialization import serialize_message, deserialize_message\n'
            'from ament_index_python.packages import get_package_share_directory\n'
            't = m.TrackedTarget(track_id=7, phrase="red cup", has_box=True, x=1.5)\n'
            'back = deserialize_message(serialize_message(t), m.TrackedTarget)\n'
            'assert back.track_id == 7 and back.phrase == "red cup" and back.x == 1.5\n'
            'print(m.__file__); print(n.__file__)\n'
            'print(get_package_share_directory("nl_tracker_ros"))\n')
    proc = subprocess.run([sys.executable, '-c', code], env=installed_env(installed),
                          cwd=installed, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    msg_file, node_file, share = proc.stdout.split()
    for path in (msg_file, node_file, share):
        assert path.startswith(str(installed)), path


def test_installed_launch_node_resolves(installed):
    # What `ros2 launch nl_tracker_ros track.launch.py` / `ros2 run` start after
    # `source install/setup.bash`: the ament prefix is the install tree, not the venv.
    prefix, exe = resolve_launch_executable(installed_env(installed))
    assert prefix == installed
    assert exe == installed / 'lib' / 'nl_tracker_ros' / 'tracker_node'
    check_launchable(exe, installed_env(installed))


def test_installed_tracker_node_starts_and_stops(installed):
    exe = installed / 'lib' / 'nl_tracker_ros' / 'tracker_node'
    proc = subprocess.Popen([str(exe), '--ros-args', '-p', 'tracker.preset:=jointnlt-tiny',
                             '-p', 'tracker.random_weights:=true',
                             '-p', 'tracker.device:=cpu'], env=installed_env(installed),
                            cwd=installed, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any('configured:' in line for line in list(lines)):
                break
            time.sleep(0.2)
        assert any('configured:' in line for line in lines), ''.join(lines)
        assert proc.poll() is None, ''.join(lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=5)
