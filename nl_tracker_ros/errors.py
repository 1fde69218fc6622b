"""Exception types of the core; messages are one line naming the thing and what was expected."""


class TrackerError(Exception):
    """Base class for errors raised by nl_tracker_ros."""


class InputError(TrackerError, ValueError):
    """An image, box, command or other input does not meet the documented contract."""


class CheckpointError(TrackerError):
    """A weight file is missing, corrupt, or belongs to another architecture."""


class ConfigError(TrackerError, ValueError):
    """A configuration file or value is invalid (unknown key, wrong type, out of range)."""
