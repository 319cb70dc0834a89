"""A growing table of timestamped rows, appended in place.

A processor that keeps the recent past of a stream (a feature window) or its whole history (the
session log) appends each chunk here: the arrays grow by doubling and a dropped front is reclaimed
when they next grow, so a chunk costs a copy of itself, never of everything kept so far.

>>> import numpy as np
>>> rows = RowBuffer(2)
>>> rows.append(np.array([0.0, 0.5]), np.ones((2, 2)))
>>> rows.drop_front(1)
>>> rows.t.tolist(), rows.x.shape
([0.5], (1, 2))
"""

from __future__ import annotations

import numpy as np


class RowBuffer:
    """Timestamps (``t``) and rows (``x``, float64, ``n_channels`` columns) kept in time of arrival order."""

    def __init__(self, n_channels: int, capacity: int = 64) -> None:
        self._t = np.empty(capacity)
        self._x = np.empty((capacity, n_channels))
        self._i0 = 0
        self._n = 0

    def __len__(self) -> int:
        return self._n - self._i0

    @property
    def t(self) -> np.ndarray:
        """The timestamps kept (a view: read only)."""
        return self._t[self._i0:self._n]

    @property
    def x(self) -> np.ndarray:
        """The rows kept (a view: read only)."""
        return self._x[self._i0:self._n]

    def append(self, t: np.ndarray, x: np.ndarray) -> None:
        """Add rows ``x`` (``len(t)`` × channels) stamped ``t``."""
        m = len(t)
        if self._n + m > self._t.size:
            live = self._n - self._i0
            size = max(64, 2 * (live + m))
            t_new, x_new = np.empty(size), np.empty((size, self._x.shape[1]))
            t_new[:live], x_new[:live] = self.t, self.x
            self._t, self._x, self._i0, self._n = t_new, x_new, 0, live
        self._t[self._n:self._n + m] = t
        self._x[self._n:self._n + m] = x
        self._n += m

    def drop_front(self, count: int) -> None:
        """Forget the ``count`` oldest rows."""
        self._i0 = min(self._n, self._i0 + max(0, int(count)))
