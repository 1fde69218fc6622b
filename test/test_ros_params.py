"""Config dataclasses <-> flat ROS parameters, and the shipped params file (no middleware)."""
import dataclasses
import pathlib
from typing import Literal

import pytest

from nl_tracker_ros.config import to_dict
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.ros import params
from nl_tracker_ros.tracker import TrackerConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Inner:
    size: int = 3                   # cells per side
    # the names, in order
    names: tuple[str, ...] = ('a', 'b')


@dataclasses.dataclass(frozen=True)
class Outer:
    mode: Literal['x', 'y'] = 'x'
    rate: float = 2
    label: str | None = None
    inner: Inner = dataclasses.field(default_factory=Inner)
    weights: tuple[float, ...] = ()


def test_specs_flatten_nested_fields_with_kinds_and_defaults():
    specs = {s.name: s for s in params.param_specs(Outer, 'p', live=frozenset({'p.rate'}))}
    assert set(specs) == {'p.mode', 'p.rate', 'p.label', 'p.inner.size', 'p.inner.names',
                          'p.weights'}
    assert specs['p.weights'].kind == 'float_array' and specs['p.weights'].optional
    assert specs['p.weights'].default is None  # unset: the empty tuple default applies
    assert specs['p.mode'].kind == 'str' and specs['p.mode'].choices == ('x', 'y')
    assert specs['p.rate'].kind == 'float' and specs['p.rate'].default == 2.0
    assert isinstance(specs['p.rate'].default, float)
    assert specs['p.label'].optional and specs['p.label'].default is None
    assert specs['p.inner.names'].kind == 'str_array'
    assert specs['p.inner.names'].default == ['a', 'b']
    assert not specs['p.rate'].read_only and specs['p.mode'].read_only
    # descriptions come from the field comments (trailing or just above), else the name
    assert specs['p.inner.size'].description == 'cells per side [int]'
    assert specs['p.inner.names'].description == 'the names, in order [str_array]'
    assert specs['p.rate'].description == 'Outer.rate [float]'


def test_unsupported_field_type_is_a_config_error():
    @dataclasses.dataclass(frozen=True)
    class Bad:
        table: dict = dataclasses.field(default_factory=dict)
    with pytest.raises(ConfigError, match='table'):
        params.param_specs(Bad)


def test_flatten_unflatten_round_trip():
    nested = {'a': 1, 'tracker': {'preset': 'p', 'deep': {'x': [1.0, 2.0]}}}
    flat = params.flatten(nested)
    assert flat == {'a': 1, 'tracker.preset': 'p', 'tracker.deep.x': [1.0, 2.0]}
    assert params.unflatten(flat) == nested
    assert params.unflatten({'a': None, 'b': 2}) == {'b': 2}   # unset optional = default


def test_every_config_field_is_a_parameter_and_defaults_round_trip():
    specs = params.node_specs()
    names = {s.name for s in specs}
    for f in dataclasses.fields(params.NodeConfig):
        assert f.name in names
    for key in params.flatten(to_dict(TrackerConfig())):
        assert f'tracker.{key}' in names
    configs = params.configs_from_values({s.name: s.default for s in specs})
    assert configs.node == params.NodeConfig() and configs.tracker == TrackerConfig()
    if configs.recovery is not None:
        for key in params.flatten(to_dict(configs.recovery)):
            assert f'recovery.{key}' in names
        assert configs.recovery == configs.recovery.__class__()
    assert all(s.description for s in specs)
    assert {s.name for s in specs if not s.read_only} == params.LIVE_PARAMETERS


def test_values_are_validated_with_the_parameter_named():
    with pytest.raises(ConfigError, match='status_period'):
        params.configs_from_values({'status_period': 0.0})
    with pytest.raises(ConfigError, match='image_qos'):
        params.configs_from_values({'image_qos': 'fast'})
    with pytest.raises(ConfigError, match='tracker'):
        params.configs_from_values({'tracker.no_such_field': 1})


def test_shipped_params_file_is_valid_and_used_by_the_offline_reader(tmp_path):
    node, tracker, _ = params.read_params_file(ROOT / 'config' / 'tracker.yaml')
    assert isinstance(node, params.NodeConfig) and isinstance(tracker, TrackerConfig)
    custom = tmp_path / 'p.yaml'
    custom.write_text('tracker_node:\n  ros__parameters:\n    status_period: 0.5\n'
                      '    tracker.precision: fp16\n    tracker:\n      pad: mean\n')
    node, tracker, _ = params.read_params_file(custom, 'tracker_node')
    assert node.status_period == 0.5
    assert tracker.precision == 'fp16' and tracker.pad == 'mean'
    custom.write_text('/**:\n  ros__parameters:\n    statsu_period: 0.5\n')
    with pytest.raises(ConfigError, match='statsu_period'):
        params.read_params_file(custom)
    custom.write_text('just: text\n')
    with pytest.raises(ConfigError, match='ros__parameters'):
        params.read_params_file(custom)


def test_replay_hands_the_recovery_yaml_to_the_node_without_nulls(tmp_path):
    """config/recovery.yaml leaves ``states.acquire_threshold`` unset (null), which a ROS
    params file cannot carry; the node must read back the same settings."""
    from nl_tracker_ros.cli import build_parser
    from nl_tracker_ros.commands.replay import _node_params_file
    from nl_tracker_ros.recovery import RecoveryConfig
    root = pathlib.Path(__file__).resolve().parents[1]
    args = build_parser().parse_args(['replay', 'x.mcap', '--recovery-config',
                                      str(root / 'config' / 'recovery.yaml')])
    path = _node_params_file(args, 'on', tmp_path / 'node.yaml')
    assert 'null' not in path.read_text()
    assert params.read_params_file(path).recovery == RecoveryConfig()
