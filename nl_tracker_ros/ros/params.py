"""Node settings and the mapping between config dataclasses and flat ROS parameters.

Pure Python (no rclpy): the node declares one ROS parameter per leaf field found here, so the
defaults live only in the dataclasses. The tracker's settings appear under ``tracker.`` and the
lost/re-found handling's under ``recovery.``, nested fields joined by dots
(``recovery.states.lost_after_frames``), exactly as a ROS params file nests them, so one
``config/tracker.yaml`` serves the node and the offline CLI (:func:`read_params_file`).
"""
from __future__ import annotations

import dataclasses
import inspect
import pathlib
import re
import types
import typing
from typing import Any, Literal

from nl_tracker_ros.config import from_dict, load_yaml
from nl_tracker_ros.errors import ConfigError

TRACKER_PREFIX = 'tracker'
RECOVERY_PREFIX = 'recovery'


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """Settings of the ROS node itself; the tracker's own come from TrackerConfig."""

    image_transport: Literal['raw', 'compressed'] = dataclasses.field(
        default='raw', metadata={'help': "'raw': sensor_msgs/Image on 'image'; 'compressed': "
                                         "sensor_msgs/CompressedImage on 'image/compressed'"})
    image_qos: Literal['sensor_data', 'reliable'] = dataclasses.field(
        default='sensor_data', metadata={'help': "image subscription QoS: 'sensor_data' (best "
                                                 "effort, depth 1) or 'reliable' (depth 1)"})
    command_durability: Literal['volatile', 'transient_local'] = dataclasses.field(
        default='volatile', metadata={'help': "command subscription durability: 'volatile' "
                                              "accepts every publisher (ros2 topic pub, most "
                                              "nodes); 'transient_local' also gets a latched "
                                              "publisher's last command when this node starts "
                                              "later, but refuses volatile publishers"})
    status_period: float = dataclasses.field(
        default=1.0, metadata={'help': 'seconds between TrackerStatus messages (> 0)'})
    publish_debug_image: bool = dataclasses.field(
        default=False, metadata={'help': "publish 'debug_image' (rgb8, box drawn) per frame"})
    warn_period: float = dataclasses.field(
        default=5.0, metadata={'help': 'at most one warning per reject reason per this many '
                                       'seconds (>= 0)'})
    max_command_chars: int = dataclasses.field(
        default=1000, metadata={'help': 'commands longer than this are rejected before '
                                        'tokenizing (the tokenizer limit truncates further)'})
    prefer_fresh_frames: bool = dataclasses.field(
        default=True, metadata={'help': 'when the newest frame is over half a frame interval '
                                        'old, wait for the next one (lower latency, a few % '
                                        'fewer model steps)'})
    autostart: bool = dataclasses.field(
        default=True, metadata={'help': 'configure and activate the lifecycle node at start-up'})

    def __post_init__(self):
        if not self.status_period > 0:
            raise ConfigError(f'status_period: expected > 0 seconds, got {self.status_period}')
        if not self.warn_period >= 0:
            raise ConfigError(f'warn_period: expected >= 0 seconds, got {self.warn_period}')
        if self.max_command_chars < 1:
            raise ConfigError(f'max_command_chars: expected >= 1, got {self.max_command_chars}')


# Node parameters that may change while the node runs; every other parameter is read-only.
LIVE_PARAMETERS = frozenset({'status_period', 'publish_debug_image', 'warn_period',
                             'max_command_chars', 'prefer_fresh_frames'})

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
    read_only: bool = True


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


def _field_comments(cls: type) -> dict[str, str]:
    """Field name -> its comment in the class source (trailing, or the lines just above).

    Config dataclasses document fields with comments; the node shows them as parameter
    descriptions. Empty when the source is not available.
    """
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out, above = {}, []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith('#'):
            above.append(stripped.lstrip('#').strip())
            continue
        m = re.match(r'\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$', line)
        if m and not stripped.startswith(('def ', 'return', '@')):
            text = ' '.join(above + ([m.group(2)] if m.group(2) else []))
            if text:
                out.setdefault(m.group(1), text)
        above = []
    return out


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def param_specs(cls: type, prefix: str = '', live: frozenset = frozenset(),
                instance: Any = None) -> list[ParamSpec]:
    """Flatten dataclass ``cls`` into parameter specs, nested fields joined with dots.

    Defaults come from ``instance`` when given, else from the field defaults; ``live`` names the
    parameters that may change at run time (all others are read-only).
    """
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
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
            specs += param_specs(tp, name, live, default)
            continue
        kind, choices, optional = _leaf_kind(tp, name)
        if isinstance(default, tuple):
            default = list(default)
        if default == [] and kind.endswith('_array'):
            # rclpy cannot type an empty list; leave it unset so the field default applies.
            default, optional = None, True
        if kind == 'float' and isinstance(default, int) and not isinstance(default, bool):
            default = float(default)
        help_text = (field.metadata.get('help') or field.metadata.get('doc')
                     or comments.get(field.name, ''))
        desc = f"{help_text or f'{cls.__name__}.{field.name}'} [{kind}]"
        specs.append(ParamSpec(name, kind, default, desc, choices, optional, name not in live))
    return specs


class NodeConfigs(typing.NamedTuple):
    """Everything the node is configured with; ``recovery`` is None when TrackerConfig holds it
    itself (then it appears under ``tracker.recovery.``)."""

    node: NodeConfig
    tracker: Any                  # nl_tracker_ros.tracker.TrackerConfig
    recovery: Any = None          # nl_tracker_ros.recovery.config.RecoveryConfig


def _recovery_class():
    """RecoveryConfig when it is separate from TrackerConfig and available, else None."""
    from nl_tracker_ros.tracker import TrackerConfig
    if any(f.name == RECOVERY_PREFIX for f in dataclasses.fields(TrackerConfig)):
        return None
    try:
        from nl_tracker_ros.recovery.config import RecoveryConfig
    except ImportError:
        return None
    return RecoveryConfig


def node_specs() -> list[ParamSpec]:
    """Parameter specs of the node: NodeConfig, ``tracker.*`` (TrackerConfig) and
    ``recovery.*`` (RecoveryConfig, the lost/re-found handling)."""
    from nl_tracker_ros.tracker import TrackerConfig  # the tracker module owns its defaults
    specs = (param_specs(NodeConfig, live=LIVE_PARAMETERS)
             + param_specs(TrackerConfig, TRACKER_PREFIX))
    recovery = _recovery_class()
    if recovery is not None:
        specs += param_specs(recovery, RECOVERY_PREFIX)
    return specs


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
    from nl_tracker_ros.tracker import TrackerConfig
    nested = unflatten(values)
    tracker = nested.pop(TRACKER_PREFIX, {})
    recovery_cls = _recovery_class()
    recovery = nested.pop(RECOVERY_PREFIX, {}) if recovery_cls is not None else None
    return NodeConfigs(
        from_dict(NodeConfig, nested), from_dict(TrackerConfig, tracker, TRACKER_PREFIX),
        None if recovery_cls is None else from_dict(recovery_cls, recovery, RECOVERY_PREFIX))


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
