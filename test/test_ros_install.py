"""`ros2 run` / `ros2 launch` find tracker_node: ``<prefix>/lib/nl_tracker_ros/tracker_node``.

launch_ros resolves ``Node(package=P, executable=E)`` as
``ament_index_python.packages.get_package_prefix(P)/lib/P/E`` (``ExecutableInPackage``), and
``ros2 run P E`` looks in the same directory. launch_ros is not on PyPI, so the Node action is
read from launch/track.launch.py with ``ast`` and resolved the same way here, for the venv route
(this venv, made by scripts/setup.sh); test_ros_colcon.py does the same for the colcon route.
Where launch_ros is importable, its own substitution is checked too.
"""
import ast
import os
import pathlib
import subprocess
import sys
import sysconfig
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / 'launch' / 'track.launch.py'

# What launch_ros.substitutions.ExecutableInPackage.perform does, run in the given environment.
RESOLVE = '''
import os, sys
from ament_index_python.packages import get_package_prefix
package, executable = sys.argv[1:3]
prefix = get_package_prefix(package)
print(prefix)
print(os.path.join(prefix, 'lib', package, executable))
'''


def launch_node_target(path: pathlib.Path = LAUNCH_FILE) -> tuple[str, str]:
    """(package, executable) of the one launch_ros ``Node(...)`` action in the launch file."""
    calls = [n for n in ast.walk(ast.parse(path.read_text(), str(path)))
             if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'Node']
    assert len(calls) == 1, f'{len(calls)} Node actions in {path}'
    kw = {k.arg: k.value for k in calls[0].keywords}
    assert isinstance(kw.get('package'), ast.Constant), 'Node(package=...) is not a literal'
    assert isinstance(kw.get('executable'), ast.Constant), 'Node(executable=...) is not a literal'
    return kw['package'].value, kw['executable'].value


def resolve_launch_executable(env: dict | None = None) -> tuple[pathlib.Path, pathlib.Path]:
    """(ament prefix, executable path) as launch_ros resolves the launch file's Node in ``env``."""
    package, executable = launch_node_target()
    proc = subprocess.run([sys.executable, '-c', RESOLVE, package, executable], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    prefix, exe = proc.stdout.split()
    return pathlib.Path(prefix), pathlib.Path(exe)


def check_launchable(exe: pathlib.Path, env: dict | None = None) -> float:
    """Assert ``exe`` is what ros2 run / launch_ros would start and that ``--help`` works.

    Returns the seconds ``exe --help`` took.
    """
    package, executable = launch_node_target()
    libexec = exe.parent
    # launch_ros: "libexec directory '...' does not exist" / "executable '...' not found".
    assert libexec.is_dir(), f"libexec directory '{libexec}' does not exist"
    assert exe.is_file(), f"executable '{executable}' not found on the libexec directory"
    assert os.access(exe, os.X_OK), f'{exe} is not executable'
    # ros2 run lists the executable files of lib/<package>.
    found = [p.name for p in libexec.iterdir() if p.is_file() and os.access(p, os.X_OK)]
    assert executable in found, found
    shebang = exe.read_text().splitlines()[0]
    assert shebang.startswith('#!') and os.access(shebang[2:].split()[0], os.X_OK), shebang
    start = time.monotonic()
    proc = subprocess.run([str(exe), '--help'], env=env, capture_output=True, text=True,
                          timeout=60)
    took = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'usage: {executable}' in proc.stdout, proc.stdout
    return took


def test_launch_file_names_the_installed_executable():
    assert launch_node_target() == ('nl_tracker_ros', 'tracker_node')


@pytest.fixture(scope='module')
def venv_route():
    pth = pathlib.Path(sysconfig.get_paths()['purelib']) / 'nl_tracker_ros_env.pth'
    if not pth.exists():
        pytest.skip('not the venv made by scripts/setup.sh')
    pytest.importorskip('ament_index_python', reason='ROS 2 wheels not installed')
    return pathlib.Path(sys.prefix)


def test_venv_route_installs_the_launch_executable(venv_route):
    prefix, exe = resolve_launch_executable()
    assert prefix == venv_route
    assert exe == venv_route / 'lib' / 'nl_tracker_ros' / 'tracker_node'
    assert (prefix / 'share/ament_index/resource_index/packages/nl_tracker_ros').is_file()
    # The launcher runs this venv's Python (the core is pip-installed editable there).
    shebang = exe.read_text().splitlines()[0]
    assert pathlib.Path(shebang[2:]).parent == venv_route / 'bin', shebang
    took = check_launchable(exe)
    assert took < 45, f'tracker_node --help took {took:.1f} s'


def test_launch_ros_itself_resolves_the_node(venv_route):
    """Only where launch_ros is importable (a ROS 2 install, or the scratch CLI setup)."""
    try:
        from launch import LaunchContext
        from launch_ros.substitutions import ExecutableInPackage
    except ImportError:
        pytest.skip('launch_ros is not installed here (no PyPI package; needs a ROS 2 install)')
    package, executable = launch_node_target()
    path = ExecutableInPackage(executable=executable, package=package).perform(LaunchContext())
    assert pathlib.Path(path) == resolve_launch_executable()[1]


def _pins(name: str) -> dict[str, str]:
    lines = [ln.split('#')[0].strip() for ln in (ROOT / name).read_text().splitlines()]
    return dict(ln.split('==') for ln in lines if ln)


def test_jazzy_requirements_pin_the_kilted_set():
    # ROS_DISTRO=jazzy bash scripts/setup.sh: the same packages as Kilted, all pinned; Jazzy's
    # ament_cmake_ros (before the ament_cmake_ros_core split) needs its gmock/gtest/pytest.
    kilted, jazzy = _pins('requirements-ros.txt'), _pins('requirements-ros-jazzy.txt')
    assert all(v and '*' not in v for v in jazzy.values()), jazzy
    assert set(kilted) - set(jazzy) == {'ros-ament-cmake-ros-core'}
    assert set(jazzy) - set(kilted) == {'ros-ament-cmake-ros', 'ros-ament-cmake-gmock',
                                        'ros-ament-cmake-gtest', 'ros-ament-cmake-pytest'}
    assert jazzy['ros-rclpy'].split('.')[0] == '7' and kilted['ros-rclpy'].split('.')[0] == '9'
    assert 'launch' not in jazzy
