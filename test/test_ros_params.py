"""Config dataclasses <-> flat ROS parameters, and the shipped params file (no middleware)."""
import dataclasses
import pathlib
from typing import Literal

import pytest

from nl_tracker_ros.config import param, to_dict
from nl_tracker_ros.errors import ConfigError
from nl_tracker_ros.recovery.config import RecoveryConfig
from nl_tracker_ros.ros import params
from nl_tracker_ros.tracker import TrackerConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Inner:
    size: int = param(3, 'cells per side', (1, 9))
    names: tuple[str, ...] = param(('a', 'b'), 'the names, in order')
    hidden: int = 4               # no help: a setting of the method, not a parameter


@dataclasses.dataclass(frozen=True)
class Outer:
    mode: Literal['x', 'y'] = param('x', 'which mode')
    rate: float = param(2, 'how often', live=True)
    label: str | None = param(None, 'a label, unset by default')
    inner: Inner = Inner()
    weights: tuple[float, ...] = param((), 'weights, none by default')


def test_specs_flatten_nested_fields_with_kinds_defaults_help_and_ranges():
    specs = {s.name: s for s in params.param_specs(Outer, 'p')}
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
    assert specs['p.rate'].live and not specs['p.mode'].live
    assert specs['p.inner.size'].description == 'cells per side'
    assert specs['p.inner.size'].range == (1, 9) and specs['p.rate'].range is None


def test_unsupported_field_type_is_a_config_error():
    @dataclasses.dataclass(frozen=True)
    class Bad:
        table: dict = param(None, 'a table')
    with pytest.raises(ConfigError, match='table'):
        params.param_specs(Bad)


def test_flatten_unflatten_round_trip():
    nested = {'a': 1, 'tracker': {'preset': 'p', 'deep': {'x': [1.0, 2.0]}}}
    flat = params.flatten(nested)
    assert flat == {'a': 1, 'tracker.preset': 'p', 'tracker.deep.x': [1.0, 2.0]}
    assert params.unflatten(flat) == nested
    assert params.unflatten({'a': None, 'b': 2}) == {'b': 2}   # unset optional = default


def test_a_small_set_of_described_parameters_whose_defaults_round_trip():
    specs = params.node_specs()
    names = {s.name for s in specs}
    assert len(specs) <= 27
    for f in dataclasses.fields(params.NodeConfig):
        assert f.name in names
    configs = params.configs_from_values({s.name: s.default for s in specs})
    assert configs == (params.NodeConfig(), TrackerConfig(), RecoveryConfig())
    for key in params.flatten(to_dict(RecoveryConfig())):
        assert f'recovery.{key}' in names
    assert 'tracker.geometry' not in names          # a setting for parity checks only
    assert all(s.description for s in specs)
    assert {s.name for s in specs if s.live} == {
        'status_period', 'publish_debug_image', 'prefer_fresh_frames'}
    # every number has a range, as the node declares it
    assert all(s.range is not None for s in specs if s.kind in ('int', 'float'))


def test_values_are_validated_with_the_parameter_named():
    with pytest.raises(ConfigError, match='status_period: expected 0.01 .. 3600, got 0.0'):
        params.configs_from_values({'status_period': 0.0})
    with pytest.raises(ConfigError, match='image_qos'):
        params.configs_from_values({'image_qos': 'fast'})
    with pytest.raises(ConfigError, match='tracker'):
        params.configs_from_values({'tracker.no_such_field': 1})
    with pytest.raises(ConfigError, match='recovery.states.keep_threshold'):
        params.configs_from_values({'recovery.states.keep_threshold': -0.1})


def test_shipped_params_file_is_generated_from_the_dataclasses():
    assert (ROOT / 'config' / 'tracker.yaml').read_text() == params.params_file_text()
    assert params.read_params_file(ROOT / 'config' / 'tracker.yaml') == (
        params.NodeConfig(), TrackerConfig(), RecoveryConfig())


def test_params_file_reader_takes_nested_and_dotted_keys(tmp_path):
    custom = tmp_path / 'p.yaml'
    custom.write_text('tracker_node:\n  ros__parameters:\n    status_period: 0.5\n'
                      '    tracker.precision: fp16\n    recovery:\n      states:\n'
                      '        lost_after_frames: 7\n')
    node, tracker, recovery = params.read_params_file(custom, 'tracker_node')
    assert node.status_period == 0.5 and tracker.precision == 'fp16'
    assert recovery.states.lost_after_frames == 7
    custom.write_text('/**:\n  ros__parameters:\n    statsu_period: 0.5\n')
    with pytest.raises(ConfigError, match='statsu_period'):
        params.read_params_file(custom)
    custom.write_text('just: text\n')
    with pytest.raises(ConfigError, match='ros__parameters'):
        params.read_params_file(custom)


def _args(*argv):
    from nl_tracker_ros.cli import build_parser
    return build_parser().parse_args(list(argv))


def test_config_option_applies_every_section_as_the_node_does(tmp_path):
    from nl_tracker_ros.commands._tracking import configs
    path = tmp_path / 'robot.yaml'
    path.write_text('/**:\n  ros__parameters:\n    tracker:\n      precision: bf16\n'
                    '    recovery:\n      colour_share: 0.3\n      states:\n'
                    '        lost_after_frames: 7\n')
    tracker, recovery = configs(_args('eval', 'data', '--config', str(path), '--threads', '2'))
    assert tracker.precision == 'bf16' and tracker.threads == 2
    assert recovery.colour_share == 0.3 and recovery.states.lost_after_frames == 7
    path.write_text('tracker:\n  preset: jointnlt-base\nrecovery:\n  enabled: false\n')
    tracker, recovery = configs(_args('track', 'x.mp4', '--config', str(path)))
    assert tracker.preset == 'jointnlt-base' and not recovery.enabled
    path.write_text('trackr:\n  preset: jointnlt-base\n')
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['trackr'\]"):
        configs(_args('track', 'x.mp4', '--config', str(path)))


def test_replay_hands_the_settings_to_the_node_as_they_were_read(tmp_path):
    from nl_tracker_ros.commands.replay import _node_params_file
    path = tmp_path / 'robot.yaml'
    path.write_text('recovery:\n  kind_threshold: 0.3\n  states:\n    trial_frames: 4\n')
    args = _args('replay', 'x.mcap', '--config', str(path))
    written = _node_params_file(args, 'on', tmp_path / 'node.yaml')
    assert 'null' not in written.read_text()
    _, tracker, recovery = params.read_params_file(written)
    assert tracker == TrackerConfig()
    assert recovery == RecoveryConfig(kind_threshold=0.3,
                                      states=dataclasses.replace(RecoveryConfig().states,
                                                                 trial_frames=4))


def test_readme_parameter_table_is_the_generated_one():
    text = (ROOT / 'README.md').read_text()
    begin = '<!-- parameters: generated by nl_tracker_ros.ros.params.parameter_table -->\n'
    end = '<!-- end of parameters -->'
    assert text.count(begin) == 1 and text.count(end) == 1
    table = text[text.index(begin) + len(begin):text.index(end)]
    assert table == params.parameter_table()
