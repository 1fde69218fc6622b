"""Package layout rules: a ROS-free core, the build files agree with the tree, one test command."""
import ast
import pathlib
import re
import xml.etree.ElementTree as ET

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / 'nl_tracker_ros'
ROS_ONLY = re.compile(r'^(rclpy|rcl_interfaces|builtin_interfaces|launch|launch_ros|rosidl\w*|'
                      r'ament_index_python|\w+_msgs|\w+_srvs|nl_tracker_ros\.msg|'
                      r'nl_tracker_ros\.ros)(\.|$)')
# ROS-layer modules without ROS imports, which the offline CLI may use (checked below).
PURE_ROS_LAYER = ('nl_tracker_ros.ros', 'nl_tracker_ros.ros.params')
TEST_COMMAND = 'bash scripts/setup.sh && .venv/bin/python -m pytest -q test'
SETUP_COMMAND = 'bash scripts/setup.sh && .venv/bin/nl-tracker demo'


def ros_imports(path: pathlib.Path, top_level_only: bool = False) -> list[str]:
    """Modules imported by ``path`` that need ROS (the pure ROS-layer helpers excepted)."""
    out = []
    for m in imported_modules(path, top_level_only):
        if not ROS_ONLY.match(m) or m in PURE_ROS_LAYER:
            continue
        if m.rsplit('.', 1)[0] in PURE_ROS_LAYER[1:]:   # a name imported from a pure module
            continue
        out.append(m)
    return sorted(out)


def imported_modules(path: pathlib.Path, top_level_only: bool = False) -> set[str]:
    """Modules (and ``module.name`` for from-imports) that ``path`` imports.

    ``top_level_only`` looks at module-level statements only (imports done at import time).
    """
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f'{node.module}.{a.name}' for a in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'import_module'
              and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def core_files():
    """The ROS-free core: everything but the ROS layer, the entry points and the node benchmark."""
    pure = [PKG / 'ros' / '__init__.py', PKG / 'ros' / 'params.py']
    return pure + [p for p in PKG.rglob('*.py')
                   if p.relative_to(PKG).parts[0] not in ('ros', 'commands', 'cli.py')
                   and p.name != 'node_overhead.py']


def test_core_never_imports_ros():
    files = core_files()
    assert len(files) > 5
    assert {PKG / 'images.py', PKG / 'inputs' / 'bags.py'} <= set(files)   # core, not ROS layer
    offenders = {str(p.relative_to(ROOT)): ros_imports(p) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_entry_points_import_ros_only_when_run():
    # `nl-tracker --help` and the offline subcommands must work without ROS: a subcommand that
    # needs it (replay) imports it inside its functions.
    files = [PKG / 'cli.py'] + sorted((PKG / 'commands').glob('*.py'))
    offenders = {str(p.relative_to(ROOT)): ros_imports(p, top_level_only=True) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_layout_checker_catches_a_ros_import(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('import numpy\nfrom sensor_msgs.msg import Image\nimport rclpy.node\n'
                   'from nl_tracker_ros.ros.params import read_params_file\n'
                   'from nl_tracker_ros.ros import node\n')
    assert ros_imports(bad) == ['nl_tracker_ros.ros.node', 'rclpy.node', 'sensor_msgs.msg',
                                'sensor_msgs.msg.Image']
    lazy = tmp_path / 'lazy.py'
    lazy.write_text('import os\n\n\ndef run():\n    import rclpy\n')
    assert ros_imports(lazy) == ['rclpy'] and ros_imports(lazy, top_level_only=True) == []


def test_package_xml_and_cmake_agree_with_the_tree():
    root = ET.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3' and root.findtext('name') == 'nl_tracker_ros'
    assert root.find('export/build_type').text == 'ament_cmake'
    assert 'rosidl_interface_packages' in [g.text for g in root.findall('member_of_group')]
    cmake = '\n'.join(ln.split('#')[0] for ln in
                      (ROOT / 'CMakeLists.txt').read_text().splitlines())
    assert 'project(nl_tracker_ros)' in cmake
    msgs = sorted(p.name for p in (ROOT / 'msg').glob('*.msg'))
    assert msgs and sorted(re.findall(r'"msg/(\w+\.msg)"', cmake)) == msgs
    assert 'ament_python_install_package' not in cmake  # ros2/rosidl_python#141
    version = re.search(r"version='([^']+)'", (ROOT / 'setup.py').read_text()).group(1)
    assert root.findtext('version') == version


def test_entry_points_resolve():
    text = (ROOT / 'setup.py').read_text()
    targets = dict(re.findall(r"'([\w-]+) = ([\w.:]+)'", text))
    assert set(targets) == {'nl-tracker', 'tracker_node'}
    import importlib
    for target in targets.values():
        module, func = target.split(':')
        if module.endswith('.node'):
            pytest.importorskip('rclpy')
        assert callable(getattr(importlib.import_module(module), func))


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / '.ci' / 'run').read_text()
    assert TEST_COMMAND in ci.splitlines()
    readme = (ROOT / 'README.md').read_text()
    assert TEST_COMMAND in readme and SETUP_COMMAND in readme


def test_ros_requirements_are_pinned():
    lines = [ln.split('#')[0].strip() for ln in
             (ROOT / 'requirements-ros.txt').read_text().splitlines()]
    reqs = [ln for ln in lines if ln]
    assert reqs and all(re.fullmatch(r'[\w.-]+==[\w.]+', r) for r in reqs), reqs
    assert 'launch' not in {r.split('==')[0] for r in reqs}


def test_setup_made_the_venv_self_contained():
    import os
    import sys
    import sysconfig
    pth = pathlib.Path(sysconfig.get_paths()['purelib']) / 'nl_tracker_ros_env.pth'
    if not pth.exists():
        pytest.skip('not the venv made by scripts/setup.sh')
    assert sys.prefix in os.environ['AMENT_PREFIX_PATH'].split(os.pathsep)
    assert os.environ.get('FASTDDS_BUILTIN_TRANSPORTS')
    from ament_index_python.packages import get_package_share_directory
    share = pathlib.Path(get_package_share_directory('nl_tracker_ros'))
    assert (share / 'package.xml').is_file()
    for exe in ('nl-tracker', 'tracker_node'):
        assert os.access(pathlib.Path(sys.prefix) / 'bin' / exe, os.X_OK), exe
