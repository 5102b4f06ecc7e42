"""L2-penalised logistic regression in NumPy, written for federated averaging.

The parameters are one vector (intercept first) over standardised features; a site's
update is a few full-batch gradient steps from the global vector, with FedProx's proximal
term when ``mu`` > 0. The pooled reference solves the same objective to convergence by
Newton's method, so federated and pooled models differ only by the federation.
"""

from __future__ import annotations

import numpy as np

from pmhub.predict.models import expit


def design(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Standardised features with an intercept column; a missing value sits at the mean."""
    z = (x - mean) / sd
    z = np.where(np.isnan(z), 0.0, z)
    return np.column_stack([np.ones(len(z)), z])


def gradient(w: np.ndarray, d: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    p = expit(d @ w)
    penalty = l2 * np.concatenate([[0.0], w[1:]])
    return np.asarray(d.T @ (p - y) / len(y) + penalty)


def local_update(
    w: np.ndarray,
    d: np.ndarray,
    y: np.ndarray,
    *,
    steps: int,
    lr: float,
    l2: float,
    mu: float = 0.0,
) -> np.ndarray:
    start = w.copy()
    out = w.copy()
    for _ in range(steps):
        out -= lr * (gradient(out, d, y, l2) + mu * (out - start))
    return out


def fit_pooled(d: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """The minimiser of the same penalised log-loss on the pooled rows (Newton)."""
    w = np.zeros(d.shape[1])
    ridge = l2 * np.diag(np.concatenate([[0.0], np.ones(d.shape[1] - 1)]))
    for _ in range(50):
        p = expit(d @ w)
        g = gradient(w, d, y, l2)
        h = d.T @ (d * (p * (1 - p))[:, None]) / len(y) + ridge + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(h, g)
        w -= step
        if np.max(np.abs(step)) < 1e-9:
            break
    return w


def predict(w: np.ndarray, d: np.ndarray) -> np.ndarray:
    return expit(d @ w)
