"""launch/track.launch.py: structure everywhere, a real load where launch_ros is importable.

``launch`` / ``launch_ros`` are not on PyPI (the PyPI ``launch`` is an unrelated project), so the
structural test reads the file; the second test runs it on machines with a ROS 2 install.
"""
import ast
import importlib.util
import pathlib

import pytest

LAUNCH_FILE = pathlib.Path(__file__).resolve().parents[1] / 'launch' / 'track.launch.py'
ARGUMENTS = {'namespace', 'params_file', 'image_topic', 'command_topic', 'device',
             'use_sim_time'}


def _declared(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, 'id', '') ==
                'DeclareLaunchArgument' and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value)
    return names


def test_launch_file_structure():
    source = LAUNCH_FILE.read_text()
    tree = ast.parse(source, str(LAUNCH_FILE))
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in funcs
    assert _declared(tree) == ARGUMENTS
    assert "'FASTDDS_BUILTIN_TRANSPORTS'" in source and "'LARGE_DATA'" in source
    assert "executable='tracker_node'" in source and "package='nl_tracker_ros'" in source
    assert 'eval(' not in source


def test_launch_description_loads_where_launch_ros_exists():
    if importlib.util.find_spec('launch_ros') is None:
        pytest.skip('launch_ros is not installed here (no PyPI package; needs a ROS 2 install)')
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node
    spec = importlib.util.spec_from_file_location('track_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    desc = module.generate_launch_description()
    assert isinstance(desc, LaunchDescription)
    args = {a.name for a in desc.entities if isinstance(a, DeclareLaunchArgument)}
    assert args == ARGUMENTS
    assert sum(isinstance(a, Node) for a in desc.entities) == 1
