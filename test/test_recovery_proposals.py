"""Corner-heatmap proposals: synthetic maps with known peaks."""
import pytest
import torch

from nl_tracker_ros.errors import InputError
from nl_tracker_ros.recovery.proposals import corner_peaks, corner_proposals, sharpness

S = 20


def peaked(points):
    """A (1, S, S) probability map with a small blob of weight w at each (x, y, w)."""
    h = torch.full((S, S), 1e-6)
    for x, y, w in points:
        h[y, x] += w
        h[y, x + 1] += 0.25 * w      # corner between two cells
        h[y + 1, x] += 0.1 * w
    return (h / h.sum()).unsqueeze(0)


def to_cells(p):
    return (p.boxes_cxcywh[0] * S).tolist()


def test_two_objects_ranked_by_strength():
    # strong object: tl (2, 3), br (7, 9); weak object: tl (12, 4), br (17, 12)
    tl = peaked([(2, 3, 0.6), (12, 4, 0.3)])
    br = peaked([(7, 9, 0.6), (17, 12, 0.3)])
    p = corner_proposals(tl, br, top_k=5)
    assert p.boxes_cxcywh.shape == (1, 5, 4) and p.scores.shape == (1, 5)
    boxes = to_cells(p)
    strong = boxes[0]
    weak = boxes[1]
    # cx, cy, w, h in cells; corners were refined a little towards the neighbour cells
    assert strong[0] == pytest.approx(4.5, abs=0.5) and strong[2] == pytest.approx(5, abs=0.5)
    assert strong[1] == pytest.approx(6.0, abs=0.5) and strong[3] == pytest.approx(6, abs=0.5)
    assert weak[0] == pytest.approx(14.5, abs=0.5) and weak[3] == pytest.approx(8, abs=0.5)
    s = p.scores[0]
    assert s[0] > s[1] > 0
    assert bool(p.valid[0, 0]) and bool(p.valid[0, 1])
    assert (torch.diff(s[p.valid[0]]) <= 0).all()     # descending


def test_spanning_cross_pair_ranks_below_both_objects():
    tl = peaked([(2, 3, 0.6), (12, 4, 0.3)])
    br = peaked([(7, 9, 0.6), (17, 12, 0.3)])
    p = corner_proposals(tl, br, top_k=5)
    boxes = to_cells(p)
    spans = [i for i, b in enumerate(boxes) if b[2] > 12]   # from tl (2, 3) to br (17, 12)
    assert spans and min(spans) >= 2
    plain = corner_proposals(tl, br, top_k=5, pair_consistency=0.0)
    spans_plain = [i for i, b in enumerate(to_cells(plain)) if b[2] > 12]
    assert min(spans_plain) == 1      # without the penalty the mixed pair beats the weak object


def test_invalid_pairs_are_not_proposed():
    tl = peaked([(15, 15, 1.0)])
    br = peaked([(3, 3, 1.0)])          # bottom-right above-left of top-left: no box
    p = corner_proposals(tl, br, top_k=3)
    assert not p.valid.any()
    assert (p.scores == 0).all()


def test_unimodal_peak_matches_soft_argmax_convention():
    tl = torch.zeros(1, S, S)
    br = torch.zeros(1, S, S)
    tl[0, 4, 5] = 1.0
    br[0, 10, 12] = 1.0
    p = corner_proposals(tl, br, top_k=1)
    cx, cy, w, h = p.boxes_cxcywh[0, 0].tolist()
    assert (cx - w / 2, cy - h / 2) == pytest.approx((5 / S, 4 / S))      # cell i -> i / S
    assert (cx + w / 2, cy + h / 2) == pytest.approx((12 / S, 10 / S))
    assert p.scores[0, 0] == pytest.approx(1.0)


def test_flat_maps_give_low_confidence():
    flat = torch.full((1, S, S), 1.0 / (S * S))
    sharp = peaked([(3, 3, 1.0)])
    assert sharpness(flat)[0] == pytest.approx(0.0, abs=1e-5)
    assert sharpness(sharp)[0] > 0.7
    p = corner_proposals(flat, flat, top_k=3)
    assert float(p.scores.max()) < 0.05


def test_peaks_are_padded_when_fewer_than_asked():
    xy, mass = corner_peaks(peaked([(3, 3, 1.0)]), count=4, window=3)
    assert xy.shape == (1, 4, 2) and mass.shape == (1, 4)
    assert mass[0, 0] > 0.9 and (mass[0, 1:] < 0.01).all()


def test_batch_rows_are_independent():
    a = (peaked([(2, 3, 1.0)]), peaked([(7, 9, 1.0)]))
    b = (peaked([(10, 2, 1.0)]), peaked([(16, 8, 1.0)]))
    p = corner_proposals(torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]]), top_k=2)
    one = corner_proposals(*b, top_k=2)
    assert torch.allclose(p.boxes_cxcywh[1], one.boxes_cxcywh[0])


def test_bad_shapes_raise_input_error():
    with pytest.raises(InputError):
        corner_proposals(torch.rand(1, S, S), torch.rand(1, S, S + 1))
    with pytest.raises(InputError):
        corner_proposals(torch.rand(S, S), torch.rand(S, S))


def skewed(x0, y0, lean):
    """A broad corner map: its mode at (x0, y0), a long tail leaning ``lean`` cells away."""
    g = torch.arange(S, dtype=torch.float32)
    gx, gy = torch.meshgrid(g, g, indexing='xy')
    h = torch.exp(-((gx - x0) ** 2 + (gy - y0) ** 2) / 2.0)
    h += 0.5 * torch.exp(-((gx - x0 - lean) ** 2 + (gy - y0 - lean) ** 2) / 8.0)
    return (h / h.sum()).unsqueeze(0)


def soft_argmax(h):
    g = torch.arange(S, dtype=torch.float32)
    return float((h[0].sum(0) * g).sum()) / S, float((h[0].sum(1) * g).sum()) / S


def test_a_broad_unimodal_map_gives_the_heads_own_box_not_a_shrunk_one():
    # corner maps whose tails lean outwards (tl up-left, br down-right), as trained heads do
    tl, br = skewed(6, 6, -2.5), skewed(13, 13, 2.5)
    p = corner_proposals(tl, br, top_k=3)
    x1, y1 = soft_argmax(tl)
    x2, y2 = soft_argmax(br)
    c = p.boxes_cxcywh[0, 0]
    assert float(c[2]) == pytest.approx(x2 - x1, abs=1e-4)
    assert float(c[3]) == pytest.approx(y2 - y1, abs=1e-4)
    assert float(c[0]) == pytest.approx((x1 + x2) / 2, abs=1e-4)
    xy, _ = corner_peaks(tl, 4, 3)
    assert float(xy[0, 0, 0]) == pytest.approx(x1, abs=1e-4)   # the expectation, not the mode
