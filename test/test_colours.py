"""Colour words of commands, and the share of a box that shows a colour."""
import numpy as np
import pytest

from nl_tracker_ros.colours import COLOURS, colour_share, named_colour
from nl_tracker_ros.errors import InputError


@pytest.mark.parametrize('text, colour', [
    ('Follow the person in the RED jacket', 'red'),
    ('the grey box', 'gray'),
    ('the red ball, the red one', 'red'),
    ('the red ball near the blue box', None),     # whose colour is which: grammar, not words
    ('the reddish ball', None),
    ('follow the cat', None),
])
def test_named_colour_finds_the_one_colour_word(text, colour):
    assert named_colour(text) == colour


def test_colour_share_counts_the_pixels_of_the_box():
    image = np.full((100, 120, 3), 245, np.uint8)         # white
    image[20:60, 30:70] = COLOURS['red']
    assert colour_share(image, (30, 20, 40, 40), 'red') == pytest.approx(1.0)
    assert colour_share(image, (30, 20, 80, 40), 'red') == pytest.approx(0.5)
    assert colour_share(image, (30, 20, 80, 40), 'white') == pytest.approx(0.5)
    assert colour_share(image, (30, 20, 40, 40), 'pink') == 0.0
    assert colour_share(image, (-50, 20, 120, 40), 'red') == pytest.approx(40 / 70)  # clipped
    assert colour_share(image, (200, 200, 10, 10), 'red') == 0.0                    # outside
    sparse = colour_share(image, (0, 0, 120, 100), 'red', max_pixels=300)
    assert sparse == pytest.approx(colour_share(image, (0, 0, 120, 100), 'red', 10 ** 6),
                                   abs=0.03)
    with pytest.raises(InputError, match='colour'):
        colour_share(image, (30, 20, 40, 40), 'teal')


def test_every_colour_the_scenes_draw_reads_as_its_own_term():
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        # the generator jitters each channel by up to 12
        patch = np.clip(np.array(rgb) + rng.integers(-12, 13, (20, 20, 3)), 0, 255)
        assert colour_share(patch.astype(np.uint8), (0, 0, 20, 20), name) > 0.95, name
