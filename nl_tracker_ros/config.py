"""Typed configuration: frozen dataclasses hold the defaults, YAML overrides them.

Every subsystem defines its own frozen dataclass next to its code; this module only knows how to
fill one from plain data. Unknown keys and wrong types are errors, never silently ignored.
"""
from __future__ import annotations

import dataclasses
import pathlib
import types
import typing
from typing import Any, TypeVar

import yaml

from nl_tracker_ros.errors import ConfigError

T = TypeVar('T')


def param(default: Any, help: str, range: tuple[float, float] | None = None,
          live: bool = False) -> Any:
    """A config field with its help text, its allowed ``range`` (inclusive) and whether it may
    change while the node runs: the one place a setting is described, for the ROS parameter
    descriptors, the README table and the range checks of :func:`check_ranges`."""
    meta = {'help': help, 'live': live}
    if range is not None:
        meta['range'] = range
    if isinstance(default, (list, dict, set)):
        raise TypeError('param(): use an immutable default')
    return dataclasses.field(default=default, metadata=meta)


def check_ranges(obj: Any, where: str) -> None:
    """Raise ConfigError for the first field of ``obj`` outside its ``param`` range."""
    for f in dataclasses.fields(obj):
        rng = f.metadata.get('range')
        value = getattr(obj, f.name)
        if rng is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        lo, hi = rng
        if not lo <= value <= hi:   # NaN fails too
            raise ConfigError(f'{where}.{f.name}: expected {lo:g} .. {hi:g}, got {value}')


def load_yaml(path: str | pathlib.Path) -> dict:
    """Read a YAML mapping from ``path`` (safe loader: no object construction)."""
    path = pathlib.Path(path)
    try:
        with path.open('r', encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f'config file {path}: not found') from None
    except yaml.YAMLError as exc:
        raise ConfigError(f'config file {path}: invalid YAML ({exc})') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f'config file {path}: expected a mapping at the top level, '
                          f'got {type(data).__name__}')
    return data


def from_dict(cls: type[T], data: dict | None, where: str = '') -> T:
    """Build dataclass ``cls`` from ``data``; missing keys keep their defaults.

    Nested dataclass fields take nested mappings. ``where`` names the position in error messages.
    """
    if data is None:
        return cls()
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f'{where or cls.__name__}: expected a mapping, '
                          f'got {type(data).__name__}')
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f'{where or cls.__name__}: unknown key(s) {unknown}; '
                          f'expected some of {sorted(fields)}')
    values = {}
    for name, value in data.items():
        key = f'{where}.{name}' if where else name
        values[name] = _coerce(hints[name], value, key)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'{where or cls.__name__}: {exc}') from None


def to_dict(obj: Any) -> dict:
    """Plain-data form of a config dataclass (tuples become lists), for YAML or JSON."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(obj)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f'{key}: invalid value {value!r}')
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{key}: expected a list, got {type(value).__name__}')
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f'{key}[{i}]') for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f'{key}: expected {len(args)} values, got {len(value)}')
        return tuple(_coerce(a, v, f'{key}[{i}]') for i, (a, v) in enumerate(zip(args, value)))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f'{key}: expected one of {list(args)}, got {value!r}')
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{key}: expected a number, got {value!r}')
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{key}: expected an integer, got {value!r}')
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{key}: expected true or false, got {value!r}')
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f'{key}: expected a string, got {value!r}')
        return value
    if tp is Any:
        return value
    raise ConfigError(f'{key}: unsupported config type {tp!r}')
