"""Config loading: defaults, nesting, type checks, unknown keys."""
import dataclasses

import pytest

from nl_tracker_ros.config import from_dict, load_yaml, to_dict
from nl_tracker_ros.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Inner:
    threshold: float = 0.5
    sizes: tuple[int, ...] = (64, 128)


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = 'tiny'
    steps: int = 3
    weights: str | None = None
    inner: Inner = Inner()


def test_defaults_and_overrides():
    cfg = from_dict(Outer, {'steps': 7, 'inner': {'threshold': 1, 'sizes': [32]}})
    assert cfg.steps == 7
    assert cfg.name == 'tiny'
    assert cfg.inner.threshold == 1.0 and isinstance(cfg.inner.threshold, float)
    assert cfg.inner.sizes == (32,)
    assert to_dict(cfg)['inner'] == {'threshold': 1.0, 'sizes': [32]}


def test_round_trip():
    cfg = from_dict(Outer, {'weights': 'a.safetensors', 'inner': {'threshold': 0.25}})
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize('data, words', [
    ({'stepz': 1}, ['stepz', 'steps']),
    ({'inner': {'treshold': 1}}, ['inner', 'treshold']),
    ({'steps': 'many'}, ['steps', 'integer']),
    ({'steps': True}, ['steps', 'integer']),
    ({'inner': {'sizes': 3}}, ['inner.sizes', 'list']),
    ({'weights': 5}, ['weights', 'string']),
])
def test_errors_name_the_key(data, words):
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data)
    message = str(info.value)
    assert '\n' not in message
    for word in words:
        assert word in message


def test_load_yaml(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text('steps: 4\ninner:\n  threshold: 0.1\n')
    assert from_dict(Outer, load_yaml(path)).inner.threshold == pytest.approx(0.1)
    path.write_text('- 1\n- 2\n')
    with pytest.raises(ConfigError, match='mapping'):
        load_yaml(path)
    path.write_text('a: [1,\n')
    with pytest.raises(ConfigError, match='invalid YAML'):
        load_yaml(path)
    with pytest.raises(ConfigError, match='not found'):
        load_yaml(tmp_path / 'missing.yaml')


def test_yaml_never_constructs_objects(tmp_path):
    path = tmp_path / 'evil.yaml'
    path.write_text('steps: !!python/object/apply:os.system ["echo hi"]\n')
    with pytest.raises(ConfigError):
        load_yaml(path)
