"""Distribution metrics over feature arrays: FID (with bootstrap interval), KID, PR/DC and intra-FID."""

from metrics.distribution.fid import (
    FIDResult,
    GaussianStats,
    bootstrap_replicates,
    covariance_factor,
    feature_stats,
    fid,
    fid_from_stats,
    frechet_distance,
    sqrtm_psd,
)
from metrics.distribution.intra_fid import IntraFIDResult, intra_fid
from metrics.distribution.kid import KIDResult, kid
from metrics.distribution.prdc import PRDCResult, prdc

__all__ = [
    "FIDResult",
    "GaussianStats",
    "bootstrap_replicates",
    "covariance_factor",
    "IntraFIDResult",
    "KIDResult",
    "PRDCResult",
    "feature_stats",
    "fid",
    "fid_from_stats",
    "frechet_distance",
    "intra_fid",
    "kid",
    "prdc",
    "sqrtm_psd",
]
