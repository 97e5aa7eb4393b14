"""How many threads the metrics' fits and factorisations (k-means, logistic regression, eigensolves) may use.

On a machine with two cores or fewer, one: the second core buys at most 2x, while a busy neighbour turns the
barriers of every k-means iteration and LAPACK panel into long waits. Measured on the shared 2-core box: sklearn
KMeans on 10,000 x 2,048 features took 72 s with two threads (53 s with OMP_WAIT_POLICY=PASSIVE) and 12 s with
one at load ~11; at load ~8 a 2,048-d eigh took 28.4 s with two threads and 14.8 s with one, eigvalsh 44.3 s and
6.5 s, Cholesky 7.8 s and 0.8 s, while a 10,000 x 2,048 Gram product lost only 25 % (3.3 s vs 4.2 s). Larger
machines keep the libraries' defaults. The choice depends only on the machine, so the same machine gives the same
numbers run after run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

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


P = ParamSpec("P")
R = TypeVar("R")


def limited_threads(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` under :func:`fit_thread_limit` (a metric's entry point; nesting is harmless)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with fit_thread_limit():
            return fn(*args, **kwargs)

    return wrapper
