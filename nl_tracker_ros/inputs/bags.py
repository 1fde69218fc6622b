"""rosbag2 tooling on the pure-Python ``rosbags`` library (no ROS installation needed).

``write_bag`` turns a Sequence into a bag (sqlite3 or mcap): ``sensor_msgs/msg/Image`` frames
(or ``CompressedImage`` with the original file bytes), the command as ``std_msgs/msg/String`` at
the first frame's stamp, and the ground truth as ``nl_tracker_ros/msg/TrackedTarget`` on its
own topic with the same header stamps as the images (``has_box`` false and ``STATE_LOST``
where the target is absent).

``open_bag`` reads any rosbag2 (or ROS 1 ``.bag``) with an image topic (Image or
CompressedImage) and, unless told otherwise, a String command topic; iterating it yields
``BagFrame(stamp, image, command, truth)`` with RGB uint8 images. Corrupt or truncated bags and
bags without the expected topics raise InputError naming the file and the problem.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import sys
from typing import Iterator, NamedTuple

import numpy as np

from nl_tracker_ros import images as imconv
from nl_tracker_ros.errors import InputError, TrackerError
from nl_tracker_ros.inputs.sequence import Sequence

IMAGE_TOPIC = '/camera/image_raw'
COMMAND_TOPIC = '/nl_tracker/command'
TRUTH_TOPIC = '/nl_tracker/ground_truth'
START_NS = 1_700_000_000 * 10**9   # fixed start stamp: the same sequence gives the same bag
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage',
               'sensor_msgs/Image', 'sensor_msgs/CompressedImage')
STRING_TYPES = ('std_msgs/msg/String', 'std_msgs/String')
TRUTH_TYPE = 'nl_tracker_ros/msg/TrackedTarget'
STATE_TRACKING, STATE_LOST = 2, 3     # TrackedTarget.STATE_* (msg/TrackedTarget.msg)
STORAGES = ('sqlite3', 'mcap')


class Truth(NamedTuple):
    """Ground truth of one frame: box in pixels (None where absent or unknown)."""

    box_xywh: tuple[float, float, float, float] | None
    absent: bool


class BagFrame(NamedTuple):
    """One image of a bag: stamp in seconds (header stamp), RGB uint8 image, the command
    received since the previous image (None if none), ground truth if the bag has it."""

    stamp: float
    image: np.ndarray
    command: str | None
    truth: Truth | None


@dataclasses.dataclass(frozen=True)
class BagInfo:
    """What ``open_bag`` found in a bag."""

    path: pathlib.Path
    image_topic: str
    image_type: str
    command_topic: str | None
    truth_topic: str | None
    frames: int
    topics: dict[str, str]       # every topic -> message type


def _msg_dirs() -> list[pathlib.Path]:
    """Where msg/*.msg may be: the source tree, this prefix, any ament (colcon) prefix."""
    root = pathlib.Path(__file__).resolve().parents[2]   # the source tree: <root>/msg
    prefixes = [sys.prefix] + [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(
        os.pathsep) if p]
    return [root / 'msg'] + [pathlib.Path(p) / 'share' / 'nl_tracker_ros' / 'msg'
                             for p in prefixes]


@functools.lru_cache(maxsize=1)
def typestore():
    """Kilted's standard types plus this package's messages, read from msg/*.msg."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    for d in _msg_dirs():
        files = sorted(d.glob('*.msg')) if d.is_dir() else []
        if any(f.stem == 'TrackedTarget' for f in files):
            types = {}
            for f in files:
                types.update(get_types_from_msg(f.read_text(), f'nl_tracker_ros/msg/{f.stem}'))
            store.register(types)
            return store
    raise TrackerError('message definitions: TrackedTarget.msg not found in '
                       + ', '.join(str(d) for d in _msg_dirs()))


def _stamp(store, ns: int):
    return store.types['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9)


def write_bag(seq: Sequence, path: str | pathlib.Path, storage: str = 'sqlite3',
              fps: float = 30.0, compressed: bool = False, image_topic: str = IMAGE_TOPIC,
              command_topic: str = COMMAND_TOPIC, truth_topic: str = TRUTH_TOPIC,
              frame_id: str = 'camera', start_ns: int = START_NS) -> pathlib.Path:
    """Write ``seq`` as a rosbag2 directory at ``path`` (which must not exist).

    Frame ``i`` is stamped ``start_ns + i / fps``; the bag timestamps equal the header stamps.
    ``compressed`` stores CompressedImage with the frame files' own bytes (JPEG/PNG).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.errors import WriterError
    if storage not in STORAGES:
        raise InputError(f'bag storage: expected one of {list(STORAGES)}, got {storage!r}')
    if fps <= 0:
        raise InputError(f'bag fps: expected > 0, got {fps}')
    path = pathlib.Path(path)
    store = typestore()
    T = store.types
    plugin = StoragePlugin.SQLITE3 if storage == 'sqlite3' else StoragePlugin.MCAP
    img_type = 'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image'
    try:
        writer = Writer(path, version=9, storage_plugin=plugin)
        writer.open()
    except WriterError as exc:
        raise InputError(f'bag {path}: cannot create ({exc})') from None
    try:
        # The command is latched (transient local), as the node expects; reliable publishers
        # for the rest match both reliable and best-effort subscribers on playback.
        c_cmd = writer.add_connection(command_topic, 'std_msgs/msg/String', typestore=store,
                                      offered_qos_profiles=[_qos(1, latched=True)])
        c_img = writer.add_connection(image_topic, img_type, typestore=store,
                                      offered_qos_profiles=[_qos(10)])
        c_gt = writer.add_connection(truth_topic, TRUTH_TYPE, typestore=store,
                                     offered_qos_profiles=[_qos(10)])
        for i in range(len(seq)):
            ns = start_ns + int(round(i * 1e9 / fps))
            header = T['std_msgs/msg/Header'](stamp=_stamp(store, ns), frame_id=frame_id)
            if i == 0:
                cmd = T['std_msgs/msg/String'](data=seq.text)
                writer.write(c_cmd, ns, store.serialize_cdr(cmd, 'std_msgs/msg/String'))
            if compressed:
                raw = pathlib.Path(seq.frame_paths[i]).read_bytes()
                fmt = 'png' if str(seq.frame_paths[i]).lower().endswith('.png') else 'jpeg'
                msg = T[img_type](header=header, format=fmt,
                                  data=np.frombuffer(raw, dtype=np.uint8))
            else:
                rgb = seq.load_frame(i)
                h, w = rgb.shape[:2]
                msg = T[img_type](header=header, height=h, width=w, encoding='rgb8',
                                  is_bigendian=0, step=w * 3, data=rgb.reshape(-1))
            writer.write(c_img, ns, store.serialize_cdr(msg, img_type))
            writer.write(c_gt, ns, store.serialize_cdr(_truth_msg(store, seq, i, header),
                                                       TRUTH_TYPE))
    finally:
        writer.close()
    return path


def _qos(depth: int, latched: bool = False):
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)
    forever = QosTime(2147483647, 4294967295)   # rosbag2's spelling of "no limit"
    durability = QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, durability, forever,
               forever, QosLiveliness.AUTOMATIC, forever, False)


def _truth_msg(store, seq: Sequence, i: int, header):
    box = seq.boxes_xywh[i]
    has_box = bool(np.all(np.isfinite(box))) and not bool(seq.absent[i])
    x, y, w, h = (float(v) for v in box) if has_box else (0.0, 0.0, 0.0, 0.0)
    return store.types[TRUTH_TYPE](
        header=header, track_id=1, phrase=seq.text,
        state=STATE_LOST if seq.absent[i] else STATE_TRACKING, has_box=has_box,
        x=x, y=y, width=w, height=h, score=1.0 if has_box else 0.0, has_candidate=False,
        candidate_x=0.0, candidate_y=0.0, candidate_width=0.0, candidate_height=0.0,
        candidate_score=0.0)


def _bag_dir(path: pathlib.Path) -> pathlib.Path:
    """Accept the bag directory, its metadata.yaml, or its .db3/.mcap file."""
    if path.is_file() and path.suffix in ('.db3', '.mcap', '.yaml'):
        if (path.parent / 'metadata.yaml').is_file():
            return path.parent
    return path


class BagReader:
    """An opened bag; iterate it for BagFrames. Use as a context manager or call close()."""

    def __init__(self, path: str | pathlib.Path, image_topic: str | None = None,
                 command_topic: str | None = None, truth_topic: str | None = None,
                 require_command: bool = True):
        from rosbags.highlevel import AnyReader
        self.path = pathlib.Path(path)
        if not self.path.exists():
            raise InputError(f'bag {self.path}: not found')
        try:
            self._reader = AnyReader([_bag_dir(self.path)], default_typestore=typestore())
            self._reader.open()
        except TrackerError:
            raise
        except Exception as exc:  # rosbags, sqlite3 and mcap each raise their own types
            raise InputError(f'bag {self.path}: cannot open ({_why(exc)})') from None
        try:
            self.info = self._select(image_topic, command_topic, truth_topic, require_command)
        except InputError:
            self.close()
            raise

    def _select(self, image_topic, command_topic, truth_topic, require_command) -> BagInfo:
        conns = self._reader.connections
        topics = {c.topic: c.msgtype for c in conns}
        counts: dict[str, int] = {}
        for c in conns:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        listing = ', '.join(f'{t} ({m})' for t, m in sorted(topics.items())) or 'none'

        def pick(wanted, types, hint, what, required):
            if wanted is not None:
                if topics.get(wanted) not in types:
                    raise InputError(f'bag {self.path}: no {what} topic {wanted} '
                                     f'(topics: {listing})')
                return wanted
            cands = sorted(t for t, m in topics.items() if m in types)
            if not cands:
                if required:
                    raise InputError(f'bag {self.path}: no {what} topic (topics: {listing})')
                return None
            # Prefer a topic named like the role, then the busiest one.
            return max(cands, key=lambda t: (hint in t, counts.get(t, 0), t))

        img = pick(image_topic, IMAGE_TYPES, 'image', 'image (Image or CompressedImage)', True)
        cmd = pick(command_topic, STRING_TYPES, 'command', 'command (std_msgs/String)',
                   require_command)
        gt = pick(truth_topic, (TRUTH_TYPE,), 'truth', 'ground-truth (TrackedTarget)',
                  truth_topic is not None)
        if counts.get(img, 0) == 0:
            raise InputError(f'bag {self.path}: image topic {img} has no messages')
        return BagInfo(self.path, img, topics[img], cmd, gt, counts[img], topics)

    def __len__(self) -> int:
        return self.info.frames

    def __enter__(self) -> 'BagReader':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying files (safe to call twice)."""
        if getattr(self, '_reader', None) is not None:
            try:
                self._reader.close()
            except Exception:
                pass
            self._reader = None

    def truths(self) -> dict[int, Truth]:
        """Ground truth by header stamp (ns); empty if the bag has no truth topic."""
        if self.info.truth_topic is None:
            return {}
        out = {}
        for conn, _, raw in self._messages([self.info.truth_topic]):
            msg = self._deserialize(raw, conn)
            box = (float(msg.x), float(msg.y), float(msg.width), float(msg.height)) \
                if msg.has_box else None
            out[_ns(msg.header.stamp)] = Truth(box, msg.state == STATE_LOST)
        return out

    def __iter__(self) -> Iterator[BagFrame]:
        if self._reader is None:
            raise InputError(f'bag {self.path}: already closed')
        truths = self.truths()
        topics = [self.info.image_topic] + ([self.info.command_topic]
                                            if self.info.command_topic else [])
        pending_cmd = None
        held = None   # an image waits until every message with its timestamp has been seen
        index = 0
        for conn, ts, raw in self._messages(topics):
            if held is not None and (ts > held[0] or conn.topic == self.info.image_topic):
                yield self._frame(held, pending_cmd, truths, index)
                pending_cmd, held, index = None, None, index + 1
            if conn.topic == self.info.command_topic:
                pending_cmd = str(self._deserialize(raw, conn).data)
            else:
                held = (ts, conn, raw, pending_cmd)
                pending_cmd = None
        if held is not None:
            yield self._frame(held, pending_cmd, truths, index)

    def _frame(self, held, later_cmd, truths, index) -> BagFrame:
        ts, conn, raw, cmd = held
        if later_cmd is not None:   # a command stamped with this very image
            cmd = later_cmd
        msg = self._deserialize(raw, conn)
        ns = _ns(msg.header.stamp) or ts
        try:
            image = decode_image(msg)
        except InputError as exc:
            raise InputError(f'bag {self.path}: frame {index} on {conn.topic}: {exc}') from None
        return BagFrame(ns / 1e9, image, cmd, truths.get(ns))

    def _messages(self, topics):
        conns = [c for c in self._reader.connections if c.topic in topics]
        try:
            yield from self._reader.messages(connections=conns)
        except TrackerError:
            raise
        except Exception as exc:
            raise InputError(f'bag {self.path}: cannot read messages ({_why(exc)})') from None

    def _deserialize(self, raw, conn):
        try:
            return self._reader.deserialize(raw, conn.msgtype)
        except Exception as exc:
            raise InputError(f'bag {self.path}: corrupt {conn.msgtype} message on '
                             f'{conn.topic} ({_why(exc)})') from None


def open_bag(path: str | pathlib.Path, image_topic: str | None = None,
             command_topic: str | None = None, truth_topic: str | None = None,
             require_command: bool = True) -> BagReader:
    """Open a bag for reading; topics are found by type when not given.

    Without a String topic, ``require_command=False`` still reads the images (command None).
    """
    return BagReader(path, image_topic, command_topic, truth_topic, require_command)


def read_bag(path: str | pathlib.Path, **kwargs) -> Iterator[BagFrame]:
    """Iterate the frames of the bag at ``path`` (opens and closes it); see ``open_bag``."""
    with open_bag(path, **kwargs) as reader:
        yield from reader


def _ns(stamp) -> int:
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


def _why(exc: Exception) -> str:
    text = ' '.join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 160 else text[:157] + '...'


def decode_image(msg) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a sensor_msgs Image or CompressedImage message.

    The same conversion as the node's (``nl_tracker_ros.images``); bags may hold encodings the
    camera driver wrote in any case ('8uc3'), so the encoding is matched case-insensitively.
    """
    if hasattr(msg, 'format'):   # CompressedImage
        return imconv.compressed_to_rgb(msg.data)
    enc = next((e for e in imconv.ENCODINGS if e.lower() == str(msg.encoding).lower()),
               str(msg.encoding))
    return imconv.raw_to_rgb(enc, int(msg.height), int(msg.width), int(msg.step), msg.data,
                             int(msg.is_bigendian))


class BagSequence:
    """A bag seen as a Sequence (``name``, ``dataset``, ``text``, ``boxes_xywh``, ``absent``,
    ``stamps``, ``len()``, ``load_frame(i)``) for offline evaluation.

    Only timestamps are kept in memory; ``load_frame`` reads the one message back from the bag
    (both storages index by time). ``commands`` lists (frame index, text) of every command.
    """

    def __init__(self, path: str | pathlib.Path, text: str = '', **topics):
        import threading
        self._bag = BagReader(path, require_command=not text, **topics)
        self.path = self._bag.path
        self.name = self.path.stem if self.path.is_file() else self.path.name
        self.dataset = 'bag'
        self._lock = threading.Lock()
        try:
            self._index(text)
        except BaseException:
            self._bag.close()
            raise

    def _index(self, text: str) -> None:
        info = self._bag.info
        truths = self._bag.truths()
        self._ts, stamps, commands, pending = [], [], [], None
        for conn, ts, raw in self._bag._messages([t for t in (info.image_topic,
                                                              info.command_topic) if t]):
            msg = self._bag._deserialize(raw, conn)
            if conn.topic == info.command_topic:
                pending = str(msg.data)
                # A command stamped with the image just seen belongs to that image.
                if self._ts and ts == self._ts[-1]:
                    commands.append((len(self._ts) - 1, pending))
                    pending = None
                continue
            if pending is not None:
                commands.append((len(self._ts), pending))
                pending = None
            self._ts.append(ts)
            stamps.append(_ns(msg.header.stamp) or ts)
        self.stamps = np.array(stamps, dtype=np.float64) / 1e9
        self.commands = tuple(commands)
        self.text = text or (commands[0][1] if commands else '')
        n = len(stamps)
        self.boxes_xywh = np.full((n, 4), np.nan)
        self.absent = np.zeros(n, dtype=bool)
        for i, ns in enumerate(stamps):
            t = truths.get(ns)
            if t is not None:
                self.absent[i] = t.absent
                if t.box_xywh is not None:
                    self.boxes_xywh[i] = t.box_xywh
        self.has_truth = bool(truths)

    def __len__(self) -> int:
        return len(self._ts)

    def load_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as an RGB uint8 (H, W, 3) array."""
        ts = self._ts[index]
        nth = index - self._ts.index(ts)   # images sharing a timestamp keep their order
        with self._lock:
            if self._bag._reader is None:
                raise InputError(f'bag {self.path}: already closed')
            conns = [c for c in self._bag._reader.connections
                     if c.topic == self._bag.info.image_topic]
            try:
                found = [(c, raw) for c, _, raw in
                         self._bag._reader.messages(connections=conns, start=ts, stop=ts + 1)]
            except Exception as exc:
                raise InputError(f'bag {self.path}: cannot read frame {index} '
                                 f'({_why(exc)})') from None
        if nth >= len(found):
            raise InputError(f'bag {self.path}: frame {index} not found again')
        conn, raw = found[nth]
        try:
            return decode_image(self._bag._deserialize(raw, conn))
        except InputError as exc:
            raise InputError(f'bag {self.path}: frame {index}: {exc}') from None

    def close(self) -> None:
        """Close the bag."""
        self._bag.close()


def read_sequence(path: str | pathlib.Path, text: str = '', **topics) -> BagSequence:
    """Open a bag as a sequence; ``text`` replaces the recorded command (and makes a command
    topic optional)."""
    return BagSequence(path, text=text, **topics)
