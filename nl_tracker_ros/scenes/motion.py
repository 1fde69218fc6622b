"""Smooth trajectories: wandering paths, exits from the view, scale curves, occluder passes."""
from __future__ import annotations

import math

import numpy as np

SMOOTH_SIGMA = 3.0  # frames; Gaussian smoothing of keyframe paths (no overshoot, unlike splines)


def smooth_path(times: np.ndarray, values: np.ndarray, n: int,
                sigma: float = SMOOTH_SIGMA) -> np.ndarray:
    """Interpolate keyframes ``values`` (K, D) at ``times`` (K,) to (n, D), Gaussian-smoothed."""
    t = np.arange(n, dtype=np.float64)
    out = np.stack([np.interp(t, times, values[:, d]) for d in range(values.shape[1])], 1)
    if sigma > 0 and n > 1:
        r = int(math.ceil(3 * sigma))
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
        k /= k.sum()
        padded = np.pad(out, ((r, r), (0, 0)), mode='edge')
        out = np.stack([np.convolve(padded[:, d], k, mode='valid')
                        for d in range(out.shape[1])], 1)
    return out


def wander(rng: np.random.Generator, n: int, start: tuple[float, float],
           bounds: tuple[float, float, float, float], speed: float,
           step: tuple[int, int] = (20, 45)) -> list[tuple[float, float, float]]:
    """Keyframes (t, x, y) of a random walk from ``start`` at about ``speed`` px/frame.

    ``bounds`` is (xmin, xmax, ymin, ymax) for the centre; steps reflect off the bounds.
    """
    xmin, xmax, ymin, ymax = bounds
    keys = [(0.0, float(start[0]), float(start[1]))]
    t, x, y = 0, float(start[0]), float(start[1])
    while t < n - 1:
        dt = int(rng.integers(step[0], step[1] + 1))
        dist = speed * dt * rng.uniform(0.4, 1.6)
        a = rng.uniform(0, 2 * np.pi)
        x = _reflect(x + dist * math.cos(a), xmin, xmax)
        y = _reflect(y + dist * math.sin(a), ymin, ymax)
        t = min(t + dt, n - 1)
        keys.append((float(t), x, y))
    return keys


def _reflect(v: float, lo: float, hi: float) -> float:
    if hi <= lo:
        return 0.5 * (lo + hi)
    span = hi - lo
    v = (v - lo) % (2 * span)
    return lo + (v if v <= span else 2 * span - v)


def scale_curve(rng: np.random.Generator, n: int, ratio: float) -> np.ndarray:
    """(n,) size multipliers drifting smoothly within [1/sqrt(ratio), sqrt(ratio)]."""
    if ratio <= 1.0:
        return np.ones(n)
    lim = 0.5 * math.log(ratio)
    times = [0.0]
    while times[-1] < n - 1:
        times.append(min(n - 1.0, times[-1] + float(rng.integers(30, 70))))
    logs = rng.uniform(-lim, lim, size=(len(times), 1))
    logs[0] = rng.uniform(-0.3 * lim, 0.3 * lim)
    return np.exp(smooth_path(np.array(times), logs, n, sigma=6.0)[:, 0])


def ease(x: np.ndarray) -> np.ndarray:
    """Smoothstep on [0, 1] (clipped outside)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def occluder_offsets(n: int, t0: int, t1: int, t2: int, t3: int, r_in: float, r_hold: float,
                     r_end: float) -> np.ndarray:
    """(n,) signed offsets of an occluder from the target along its direction of travel.

    It comes in from ``r_in`` (t0..t1), holds at ``r_hold`` (t1..t2) and leaves to ``r_end``
    (t2..t3); NaN outside [t0, t3] where the occluder does not exist.
    """
    t = np.arange(n, dtype=np.float64)
    r = np.full(n, np.nan)
    a = (t >= t0) & (t < t1)
    r[a] = r_in + (r_hold - r_in) * ease((t[a] - t0) / max(1, t1 - t0))
    r[(t >= t1) & (t <= t2)] = r_hold
    b = (t > t2) & (t <= t3)
    r[b] = r_hold + (r_end - r_hold) * ease((t[b] - t2) / max(1, t3 - t2))
    return r
