"""Ridge regression from image features to condition vectors, its penalty chosen by exact leave-one-out error.

What ``StandardScaler`` + ``RidgeCV(alphas)`` (scikit-learn: unpenalised intercept, one penalty for all targets
chosen by the mean squared leave-one-out error) compute, from one symmetric eigendecomposition. With centred
standardised features X (n x d) and Q = X V (V the eigenvectors of X^T X, s^2 its eigenvalues; for n < d the
eigenvectors U of X X^T and Q = U diag(s) instead), the fitted values are 1 ybar^T + H_a y_c with
H_a = Q diag(1 / (s^2 + a)) Q^T, the hat matrix's diagonal is 1/n + sum_j Q_ij^2 / (s_j^2 + a), and the
leave-one-out residual is the residual over (1 - h_i). Every penalty then costs O(n min(n, d) dc); scikit-learn's
covariance mode recomputed an n d^2 product per penalty (137 s of the 142 s retrieval took at d = 2048 on the busy
2-core box, the two identical fits of the generated set and the ceiling included).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from metrics.threads import fit_thread_limit


class ConditionRegressor:
    """Standardise, then ridge with the penalty of least leave-one-out error among ``alphas`` (``alpha_``)."""

    def __init__(self, alphas: np.ndarray):
        self.alphas = np.asarray(alphas, dtype=np.float64)
        self.alpha_: float | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> ConditionRegressor:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(x.shape[0], -1)
        self.mean_ = x.mean(axis=0)
        scale = x.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)  # as StandardScaler: constant columns pass unscaled
        xs = (x - self.mean_) / self.scale_
        xc = xs - xs.mean(axis=0)
        self.y_mean_ = y.mean(axis=0)
        yc = y - self.y_mean_
        n, d = xc.shape
        with fit_thread_limit():
            if n >= d:
                s2, v = scipy.linalg.eigh(xc.T @ xc, driver="evd", check_finite=False)
                q = xc @ v
            else:
                s2, u = scipy.linalg.eigh(xc @ xc.T, driver="evd", check_finite=False)
                q = u * np.sqrt(np.clip(s2, 0.0, None))
        s2 = np.clip(s2, 0.0, None)
        qty = q.T @ yc
        q2 = q * q
        errors = []
        for a in self.alphas:
            g = 1.0 / (s2 + a)
            resid = yc - q @ (g[:, None] * qty)
            hat = 1.0 / n + q2 @ g
            errors.append(float(np.mean((resid / (1.0 - hat)[:, None]) ** 2)))
        best = int(np.argmin(errors))  # the first of equals, as scikit-learn keeps the first best
        self.alpha_ = float(self.alphas[best])
        g = 1.0 / (s2 + self.alpha_)
        # coefficients on the centred standardised features: X^T (X X^T + a)^-1 y = V diag(g) Q^T y (n >= d)
        self.coef_ = (v @ (g[:, None] * qty)) if n >= d else xc.T @ ((u * g) @ (u.T @ yc))
        self.x_offset_ = xs.mean(axis=0)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        xs = (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_
        return (xs - self.x_offset_) @ self.coef_ + self.y_mean_
