"""Node settings and the mapping between config dataclasses and flat ROS parameters.

Pure Python (no rclpy): the node declares one ROS parameter per leaf field found here, so the
defaults live only in the dataclasses. The tracker's settings appear under ``tracker.`` and the
lost/re-found handling's under ``recovery.``, nested fields joined by dots
(``recovery.states.lost_after_frames``), exactly as a ROS params file nests them, so one
``config/tracker.yaml`` serves the node and the offline CLI (:func:`read_params_file`).
"""
from __future__ import annotations

import dataclasses
import pathlib
import types
import typing
from typing import Any, Literal

from nl_tracker_ros.config import check_ranges, from_dict, load_yaml, param
from nl_tracker_ros.errors import ConfigError

TRACKER_PREFIX = 'tracker'
RECOVERY_PREFIX = 'recovery'


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """Settings of the ROS node itself; the tracker's own come from TrackerConfig."""

    image_transport: Literal['raw', 'compressed'] = param(
        'raw', "'raw': sensor_msgs/Image on 'image'; 'compressed': sensor_msgs/CompressedImage "
               "on 'image/compressed'")
    image_qos: Literal['sensor_data', 'reliable'] = param(
        'sensor_data', "image subscription: 'sensor_data' (best effort, depth 1; matches every "
                       "camera) or 'reliable' (depth 1)")
    command_durability: Literal['volatile', 'transient_local'] = param(
        'volatile', "command subscription: 'volatile' matches every publisher (ros2 topic pub, "
                    "most nodes); 'transient_local' also gets a latched publisher's last "
                    "command when the node starts later, but refuses volatile publishers")
    status_period: float = param(1.0, 'seconds between TrackerStatus messages', (0.01, 3600),
                                 live=True)
    publish_debug_image: bool = param(False, "publish 'debug_image' (rgb8, box drawn) per "
                                             'frame', live=True)
    prefer_fresh_frames: bool = param(
        True, 'when the newest frame is over half a frame interval old, wait for the next one '
              '(lower latency, a few % fewer model steps)', live=True)
    autostart: bool = param(True, 'configure and activate the lifecycle node at start-up '
                                  '(false: a lifecycle manager drives it)')

    def __post_init__(self):
        check_ranges(self, 'node')


KINDS = ('bool', 'int', 'float', 'str', 'bool_array', 'int_array', 'float_array', 'str_array')


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One flat parameter derived from a dataclass leaf field."""

    name: str                        # e.g. 'tracker.preset'
    kind: str                        # one of KINDS
    default: Any                     # None only when ``optional`` and the field default is None
    description: str
    choices: tuple = ()              # allowed values of a Literal field
    optional: bool = False           # the field accepts None (left unset in ROS)
    live: bool = False               # may change while configured; else applied at configure
    range: tuple | None = None       # (low, high), inclusive, of a number


def _leaf_kind(tp: Any, name: str) -> tuple[str, tuple, bool]:
    """(kind, choices, optional) of a field type, or ConfigError for unsupported types."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(args):
            kind, choices, _ = _leaf_kind(rest[0], name)
            return kind, choices, True
        raise ConfigError(f'{name}: cannot map union {tp!r} to a ROS parameter')
    if origin is Literal:
        kinds = {_leaf_kind(type(a), name)[0] for a in args}
        if len(kinds) != 1:
            raise ConfigError(f'{name}: Literal of mixed types {args!r}')
        return kinds.pop(), tuple(args), False
    if origin in (tuple, list):
        elems = {a for a in args if a is not Ellipsis}
        if len(elems) != 1:
            raise ConfigError(f'{name}: expected a homogeneous tuple, got {tp!r}')
        kind = _leaf_kind(elems.pop(), name)[0]
        if kind.endswith('_array'):
            raise ConfigError(f'{name}: nested sequences are not ROS parameters')
        return f'{kind}_array', (), False
    for py, kind in ((bool, 'bool'), (int, 'int'), (float, 'float'), (str, 'str')):
        if tp is py:
            return kind, (), False
    raise ConfigError(f'{name}: cannot map type {tp!r} to a ROS parameter')


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def param_specs(cls: type, prefix: str = '', instance: Any = None) -> list[ParamSpec]:
    """Flatten dataclass ``cls`` into parameter specs, nested fields joined with dots.

    Only fields declared with ``config.param`` (which carries their help text) are parameters;
    a nested dataclass field contributes its own. Defaults come from ``instance`` when given,
    else from the field defaults.
    """
    hints = typing.get_type_hints(cls)
    specs = []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        name = f'{prefix}.{field.name}' if prefix else field.name
        tp = hints[field.name]
        default = getattr(instance, field.name) if instance is not None else _default_of(field)
        if default is dataclasses.MISSING:
            raise ConfigError(f'{name}: a ROS parameter needs a default value')
        if dataclasses.is_dataclass(tp):
            specs += param_specs(tp, name, default)
            continue
        if 'help' not in field.metadata:
            continue
        kind, choices, optional = _leaf_kind(tp, name)
        if isinstance(default, tuple):
            default = list(default)
        if default == [] and kind.endswith('_array'):
            # rclpy cannot type an empty list; leave it unset so the field default applies.
            default, optional = None, True
        if kind == 'float' and isinstance(default, int) and not isinstance(default, bool):
            default = float(default)
        specs.append(ParamSpec(name, kind, default, field.metadata['help'], choices, optional,
                               field.metadata.get('live', False),
                               field.metadata.get('range')))
    return specs


class NodeConfigs(typing.NamedTuple):
    """Everything the node is configured with."""

    node: NodeConfig
    tracker: Any                  # nl_tracker_ros.tracker.TrackerConfig
    recovery: Any                 # nl_tracker_ros.recovery.config.RecoveryConfig


def node_specs() -> list[ParamSpec]:
    """Parameter specs of the node: NodeConfig, ``tracker.*`` (TrackerConfig) and
    ``recovery.*`` (RecoveryConfig, the lost/re-found handling)."""
    from nl_tracker_ros.recovery.config import RecoveryConfig
    from nl_tracker_ros.tracker import TrackerConfig  # the tracker module owns its defaults
    return (param_specs(NodeConfig) + param_specs(TrackerConfig, TRACKER_PREFIX)
            + param_specs(RecoveryConfig, RECOVERY_PREFIX))


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{'a.b': 1, 'c': 2} -> {'a': {'b': 1}, 'c': 2}; None values (unset) are left out."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        *parents, leaf = key.split('.')
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f'{key}: {p} is both a value and a group')
        node[leaf] = list(value) if isinstance(value, tuple) else value
    return nested


def flatten(nested: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; the inverse of :func:`unflatten`."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f'{prefix}.{key}' if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def configs_from_values(values: dict[str, Any]) -> NodeConfigs:
    """NodeConfigs from flat parameter values (``tracker.`` / ``recovery.`` prefixed keys).

    Raises ConfigError naming the parameter when a value does not fit its field.
    """
    from nl_tracker_ros.recovery.config import RecoveryConfig
    from nl_tracker_ros.tracker import TrackerConfig
    nested = unflatten(values)
    tracker = nested.pop(TRACKER_PREFIX, {})
    recovery = nested.pop(RECOVERY_PREFIX, {})
    return NodeConfigs(from_dict(NodeConfig, nested),
                       from_dict(TrackerConfig, tracker, TRACKER_PREFIX),
                       from_dict(RecoveryConfig, recovery, RECOVERY_PREFIX))


def params_section(data: dict, node_name: str | None = None) -> dict:
    """The ``ros__parameters`` mapping of a ROS params file for ``node_name`` (or ``/**``)."""
    candidates = [k for k in (node_name, f'/{node_name}' if node_name else None, '/**') if k]
    for key in candidates:
        if isinstance(data.get(key), dict) and 'ros__parameters' in data[key]:
            return data[key]['ros__parameters'] or {}
    keys = [k for k, v in data.items() if isinstance(v, dict) and 'ros__parameters' in v]
    if len(keys) == 1:
        return data[keys[0]]['ros__parameters'] or {}
    raise ConfigError(f'params file: expected a "/**: ros__parameters:" section, found '
                      f'{sorted(data) or "nothing"}')


def read_params_file(path: str | pathlib.Path, node_name: str | None = None) -> NodeConfigs:
    """(NodeConfig, TrackerConfig, RecoveryConfig) from a ROS params file (config/tracker.yaml).

    For the offline CLI: the same file the node reads, validated the same way.
    """
    section = params_section(load_yaml(path), node_name)
    try:
        return configs_from_values(flatten(section))
    except ConfigError as exc:
        raise ConfigError(f'params file {path}: {exc}') from None


def allowed(spec: ParamSpec) -> str:
    """The values ``spec`` allows, as the README table and refusals say them."""
    if spec.choices:
        return ', '.join(f'`{c}`' for c in spec.choices)
    if spec.range is not None:
        return f'{spec.range[0]:g} .. {spec.range[1]:g}'
    return ''


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "''" if value == '' else str(value)


def parameter_table() -> str:
    """The README's parameter table (markdown), generated from the config dataclasses."""
    rows = ['| parameter | default | allowed | what it does |', '| --- | --- | --- | --- |']
    for spec in node_specs():
        live = ' (may change while running)' if spec.live else ''
        rows.append(f'| `{spec.name}` | `{_shown(spec.default)}` | {allowed(spec)} | '
                    f'{spec.description}{live} |')
    return '\n'.join(rows) + '\n'


def params_file_text() -> str:
    """``config/tracker.yaml``: every parameter at its default, with its help, generated from
    the config dataclasses (a test keeps the file equal to this)."""
    lines = ['# Parameters of tracker_node, generated from the config dataclasses',
             '# (nl_tracker_ros.ros.params.params_file_text); every key is optional and the',
             '# offline commands read the same file (--config). `ros2 param describe` explains',
             '# each one.', '/**:', '  ros__parameters:']
    groups: dict = {}
    for spec in node_specs():
        *parents, leaf = spec.name.split('.')
        groups.setdefault(tuple(parents), []).append((leaf, spec))
    opened: tuple = ()
    for parents, items in groups.items():
        for depth, name in enumerate(parents):
            if opened[:depth + 1] != parents[:depth + 1]:
                lines.append('    ' + '  ' * depth + f'{name}:')
        opened = parents
        indent = '    ' + '  ' * len(parents)
        for leaf, spec in items:
            lines.append(f'{indent}# {spec.description}')
            value = "''" if spec.default == '' else _shown(spec.default)
            lines.append(f'{indent}{leaf}: {value}')
    return '\n'.join(lines) + '\n'
