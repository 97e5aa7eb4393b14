"""How many covers one evaluation (``bench evaluate --n``) or one power replicate (``bench power --n``) may ask for.

Checked before any work, so ``--n 10000000000000`` is one line instead of a MemoryError or a numpy ValueError after
the features are computed. Two caps, the smaller wins, and the message says which and why:

- **By the data**: covers are asked for test tracks drawn with replacement, and everything they are compared with
  (FID against the real test covers, the real-cover ceiling, retrieval among the test conditions) is measured on
  those test tracks. At ``PER_TEST_TRACK`` = 1000 covers per test track the generated side's sampling error is
  about 3 % (1/sqrt(1000)) of the real side's; more covers repeat the same conditions and cost memory and time only.
- **By memory**: ``bytes_per_cover`` estimates what one cover holds at once (images, features and their float64
  copies, a row of the chunked k-NN distances, a permutation row), at most ``MEMORY_SHARE`` of the memory available
  now (``core.memory``). The estimate assumes the widest extractor (Inception, 2048-d), so it errs on the safe side.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from core.errors import UserError
from core.memory import available_bytes, gib

PER_TEST_TRACK = 1000
MEMORY_SHARE = 0.5
FEATURE_DIM = 2048  # Inception's pool features, the widest extractor coverbench ships
KNN_CHUNK = 1024  # rows per chunk of metrics.distribution.prdc's distance matrices
RETRIEVAL_CANDIDATES = 1000  # metrics.conditioning.retrieval ranks at most this many conditions per cover
MIN_COVERS = 20
MAX_DIGITS = 30  # a count past 10^30 is no count of covers; refused before it becomes a 10^9-digit integer


def parse_count(text: str, flag: str = "--n", least: int = MIN_COVERS) -> int:
    """A number of covers as typed: ``10000`` or ``1e4`` (the same count; a CLI int would turn ``1e13`` into a
    usage box instead of the cap's one line). Fractions, words and counts below ``least`` are one line."""
    raw = str(text).strip()
    try:
        d = Decimal(raw.replace("_", ""))
    except InvalidOperation:
        d = Decimal("NaN")
    if not d.is_finite() or d != d.to_integral_value():
        raise UserError(f"{flag} takes a whole number of covers; {raw!r} is not one")
    if d.adjusted() >= MAX_DIGITS:
        raise UserError(f"{flag} {raw} is too many: no dataset has test tracks for 10^{MAX_DIGITS} covers")
    n = int(d)
    if n < least:
        raise UserError(f"{flag} {n} is too small: use at least {least} covers")
    return n


def evaluation_bytes_per_cover(res: int, feature_dim: int = FEATURE_DIM) -> int:
    """Peak bytes per generated cover in ``bench evaluate``: uint8 covers and their shuffled-condition twins (twice
    while batches are joined), float32 features of both with float64 copies, a k-NN distance column (float64, plus
    its comparison masks) and one permutation row (float64 keys, int64 order)."""
    images = 2 * 2 * 3 * res * res
    features = 2 * feature_dim * (4 + 8)
    knn = 3 * KNN_CHUNK * 8
    return images + features + knn + 16


def power_bytes_per_cover(feature_dim: int = FEATURE_DIM) -> int:
    """Peak bytes per partial-oracle cover in ``bench power``: its features (float32 and a float64 copy), its
    retrieval ranks (int32 per candidate) and one permutation row."""
    return feature_dim * (4 + 8) + RETRIEVAL_CANDIDATES * 4 + 16


def check_covers(n: int, *, n_test: int, bytes_per_cover: int, where: str, flag: str = "--n",
                 memory: int | None = None) -> None:
    """UserError naming the cap and its reason when ``n`` covers exceed what ``n_test`` test tracks or memory allow.

    ``memory``: bytes available (default: measured now; None when unknown leaves only the data cap).
    """
    data_cap = PER_TEST_TRACK * n_test
    if n_test > 0 and n > data_cap:
        raise UserError(
            f"{flag} {n} is too many: {where} has {n_test} test tracks, and at most {PER_TEST_TRACK} covers per test "
            f"track ({data_cap}) are useful; everything they are compared with is measured on those {n_test} real "
            "covers, so more generated covers only repeat their conditions"
        )
    avail = available_bytes() if memory is None else memory
    if avail is None:
        return
    mem_cap = int(MEMORY_SHARE * avail) // bytes_per_cover
    if n > mem_cap:
        raise UserError(
            f"{flag} {n} needs about {gib(n * bytes_per_cover)} of memory ({bytes_per_cover:,} bytes per cover); "
            f"{gib(avail)} is available, and at most half of it may go to the covers: use {flag} {mem_cap} or less"
        )
