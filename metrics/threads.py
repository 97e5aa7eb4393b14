"""How many threads the metrics' small-step fits (k-means, logistic regression, batched eigensolves) may use.

On a machine with two cores or fewer, one: the second core buys at most 2x, while a busy neighbour turns the
OpenMP barriers of every k-means iteration into long waits (measured on the shared 2-core box, load ~11: sklearn
KMeans on 10,000 x 2,048 features took 72 s with two threads, 53 s with OMP_WAIT_POLICY=PASSIVE, 12 s with one).
Larger machines keep the libraries' defaults. The choice depends only on the machine, so the same machine gives
the same numbers run after run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

SMALL_MACHINE_CORES = 2


def fit_threads() -> int | None:
    """1 on a small machine, None (library default) elsewhere."""
    return 1 if (os.cpu_count() or 1) <= SMALL_MACHINE_CORES else None


@contextmanager
def fit_thread_limit() -> Iterator[None]:
    """BLAS and OpenMP thread pools (numpy, scipy, scikit-learn) limited to :func:`fit_threads` inside."""
    n = fit_threads()
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(n):
        yield
