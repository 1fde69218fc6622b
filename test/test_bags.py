"""Bag tooling: round trips through sqlite3 and mcap, topic discovery, corrupt bags."""
import pathlib

import cv2
import numpy as np
import pytest

from nl_tracker_ros.errors import InputError
from nl_tracker_ros.inputs import Sequence, bags
from nl_tracker_ros.inputs.bags import decode_image, open_bag, read_bag, read_sequence, write_bag


@pytest.fixture
def seq(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        p = tmp_path / 'frames' / f'{i + 1:08d}.png'
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), rng.integers(0, 256, (12, 20, 3), dtype=np.uint8))
        paths.append(p)
    boxes = np.array([[1, 2, 5, 6], [2, 3, 5, 6], [np.nan] * 4, [4, 5, 6, 7], [5, 6, 7, 8.5]])
    absent = np.array([False, False, True, False, False])
    return Sequence('tiny', 'test', 'the red ball', tuple(paths), boxes, absent)


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
@pytest.mark.parametrize('compressed', [False, True])
def test_round_trip(seq, tmp_path, storage, compressed):
    out = write_bag(seq, tmp_path / 'bag', storage=storage, fps=10.0, compressed=compressed)
    frames = list(read_bag(out))
    assert len(frames) == len(seq)
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(f.image, seq.load_frame(i))
        assert f.stamp == pytest.approx(bags.START_NS / 1e9 + i * 0.1, abs=1e-6)
        assert f.command == (seq.text if i == 0 else None)
        assert f.truth.absent == bool(seq.absent[i])
        if seq.absent[i]:
            assert f.truth.box_xywh is None
        else:
            np.testing.assert_allclose(f.truth.box_xywh, seq.boxes_xywh[i])
    with open_bag(out) as reader:
        assert reader.info.image_type.endswith('CompressedImage' if compressed else '/Image')
        assert reader.info.command_topic == bags.COMMAND_TOPIC and len(reader) == 5


def test_bag_as_sequence(seq, tmp_path):
    out = write_bag(seq, tmp_path / 'bag', storage='mcap')
    bs = read_sequence(out)
    try:
        assert len(bs) == 5 and bs.text == seq.text and bs.commands == ((0, seq.text),)
        np.testing.assert_array_equal(bs.absent, seq.absent)
        np.testing.assert_array_equal(bs.boxes_xywh, seq.boxes_xywh)
        assert np.all(np.diff(bs.stamps) > 0)
        for i in (3, 0, 4):                                   # random access
            np.testing.assert_array_equal(bs.load_frame(i), seq.load_frame(i))
    finally:
        bs.close()
    assert read_sequence(out, text='another phrase').text == 'another phrase'


def _bag_with(tmp_path, name, with_image=True, with_command=True):
    from rosbags.rosbag2 import Writer
    store = bags.typestore()
    T = store.types
    w = Writer(tmp_path / name, version=9)
    w.open()
    stamp = T['builtin_interfaces/msg/Time'](sec=5, nanosec=0)
    header = T['std_msgs/msg/Header'](stamp=stamp, frame_id='cam')
    if with_command:
        c = w.add_connection('/cmd', 'std_msgs/msg/String', typestore=store)
        w.write(c, 5 * 10**9, store.serialize_cdr(T['std_msgs/msg/String'](data='go'),
                                                  'std_msgs/msg/String'))
    if with_image:
        img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
        c = w.add_connection('/cam/image', 'sensor_msgs/msg/Image', typestore=store)
        msg = T['sensor_msgs/msg/Image'](header=header, height=2, width=3, encoding='bgr8',
                                         is_bigendian=0, step=9, data=img.reshape(-1))
        w.write(c, 5 * 10**9, store.serialize_cdr(msg, 'sensor_msgs/msg/Image'))
    w.close()
    return tmp_path / name


def test_any_bag_with_image_and_command(tmp_path):
    path = _bag_with(tmp_path, 'plain')
    (frame,) = list(read_bag(path))
    assert frame.command == 'go' and frame.truth is None and frame.stamp == 5.0
    bgr = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(frame.image, bgr[..., ::-1])


def test_missing_topics(tmp_path):
    no_cmd = _bag_with(tmp_path, 'no_cmd', with_command=False)
    with pytest.raises(InputError, match=r'no_cmd.*no command'):
        open_bag(no_cmd)
    (frame,) = list(read_bag(no_cmd, require_command=False))
    assert frame.command is None
    assert read_sequence(no_cmd, text='follow it').text == 'follow it'
    no_img = _bag_with(tmp_path, 'no_img', with_image=False)
    with pytest.raises(InputError, match=r'no_img.*no image'):
        open_bag(no_img)
    with pytest.raises(InputError, match='/nope'):
        open_bag(_bag_with(tmp_path, 'named'), image_topic='/nope')


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_truncated_bag_names_the_file(seq, tmp_path, storage):
    out = write_bag(seq, tmp_path / f'broken_{storage}', storage=storage)
    data_file = next(p for p in out.iterdir() if p.suffix in ('.db3', '.mcap'))
    raw = data_file.read_bytes()
    data_file.write_bytes(raw[:len(raw) // 3])
    with pytest.raises(InputError, match=f'broken_{storage}'):
        list(read_bag(out))


def test_unreadable_bags(seq, tmp_path):
    out = write_bag(seq, tmp_path / 'garbled')
    (out / 'metadata.yaml').write_text(': not yaml [')
    with pytest.raises(InputError, match='garbled'):
        open_bag(out)
    with pytest.raises(InputError, match='not found'):
        open_bag(tmp_path / 'absent_bag')
    noise = tmp_path / 'noise'
    noise.mkdir()
    (noise / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}\n')
    with pytest.raises(InputError, match='noise'):
        open_bag(noise)
    with pytest.raises(InputError, match='storage'):
        write_bag(seq, tmp_path / 'x', storage='zip')


class _Msg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_decode_image_encodings():
    rgb = np.random.default_rng(1).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    padded = np.zeros((3, 16), np.uint8)          # step larger than width * 3
    padded[:, :12] = rgb[..., ::-1].reshape(3, 12)
    m = _Msg(height=3, width=4, step=16, encoding='bgr8', is_bigendian=0, data=padded.ravel())
    np.testing.assert_array_equal(decode_image(m), rgb)
    mono16 = (np.arange(12, dtype='<u2') * 4000).reshape(3, 4)
    m = _Msg(height=3, width=4, step=8, encoding='mono16', is_bigendian=0,
             data=np.frombuffer(mono16.tobytes(), np.uint8))
    out = decode_image(m)
    assert out.shape == (3, 4, 3) and (out[..., 0] == (mono16 >> 8)).all()
    m = _Msg(height=3, width=4, step=12, encoding='8uc3', is_bigendian=0,  # any case
             data=np.ascontiguousarray(rgb[..., ::-1]).ravel())
    np.testing.assert_array_equal(decode_image(m), rgb)
    with pytest.raises(InputError, match='unsupported encoding'):
        decode_image(_Msg(height=1, width=1, step=4, encoding='32FC1', is_bigendian=0,
                          data=np.zeros(4, np.uint8)))
    with pytest.raises(InputError, match='size mismatch'):
        decode_image(_Msg(height=3, width=4, step=12, encoding='rgb8', is_bigendian=0,
                          data=np.zeros(10, np.uint8)))
    ok, png = cv2.imencode('.png', rgb[..., ::-1])
    np.testing.assert_array_equal(decode_image(_Msg(format='png', data=png.ravel())), rgb)
    with pytest.raises(InputError, match='decode'):
        decode_image(_Msg(format='jpeg', data=np.zeros(8, np.uint8)))


def test_msg_files_are_registered():
    store = bags.typestore()
    assert bags.TRUTH_TYPE in store.types
    msg_dir = pathlib.Path(bags.__file__).resolve().parents[2] / 'msg'
    assert 'STATE_LOST=3' in (msg_dir / 'TrackedTarget.msg').read_text().replace(' ', '')
