"""Thinning long series for display without losing what matters on a chart of vitals: the extremes.

A 4-hour session has 14,400 SpO2 readings; a chart a few hundred pixels wide needs far fewer. Taking every
n-th point can drop a one-reading dip; the min and max of each bin (tsdownsample, in Rust) keep every dip
and spike, and a gap (NaN) stays a gap. The full data stays in the store for a zoomed view.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tsdownsample import NaNMinMaxDownsampler

from monitor.model import Observation


def minmax_indices(x: np.ndarray, y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of the points to draw: all of them when few, else the min and max of each of
    `max_points / 2` equal bins (x must grow), so no extreme is ever lost to thinning."""
    if len(x) <= max_points:
        return np.arange(len(x))
    n_out = max(4, max_points - max_points % 2)
    return np.asarray(NaNMinMaxDownsampler().downsample(x, y, n_out=n_out), dtype=np.int64)


def thin(points: Sequence[Observation], max_points: int) -> list[Observation]:
    """Observations of one series in time order, thinned to at most `max_points` by min/max per bin
    (invalid or missing values count as gaps)."""
    if len(points) <= max_points:
        return list(points)
    x = np.fromiter((o.ts for o in points), dtype=np.float64, count=len(points))
    y = np.fromiter(
        (o.value if o.valid and o.value is not None else np.nan for o in points),
        dtype=np.float64,
        count=len(points),
    )
    return [points[i] for i in minmax_indices(np.maximum.accumulate(x), y, max_points).tolist()]
