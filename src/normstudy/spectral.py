"""Stochastic Lanczos quadrature of a symmetric operator's spectrum, in plain numpy:
shared by the Hessian probe (:mod:`normstudy.probes.hessian`), which supplies
Hessian-vector products, and the Hessian figure, which reads the probe's records
without importing torch (Ghorbani et al. 2019, §2.2)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

import numpy as np

Matvec = Callable[[np.ndarray], np.ndarray]


def lanczos_tridiagonal(
    matvec: Matvec, start: np.ndarray, steps: int, breakdown: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal ``alpha`` and off-diagonal ``beta`` of the Lanczos tridiagonal matrix T.

    ``steps`` Lanczos iterations from ``start`` with full reorthogonalisation (Gram-Schmidt
    against every previous basis vector, twice), as Ghorbani et al. (2019, §2.2) require
    for stochastic Lanczos quadrature in floating point. Stops early when the Krylov space
    is invariant (the residual falls below ``breakdown`` times the largest ``||H v||``).
    """
    n = start.size
    steps = min(steps, n)
    basis = np.zeros((steps, n))
    alpha: list[float] = []
    beta: list[float] = []
    v = start / np.linalg.norm(start)
    scale = 0.0
    for j in range(steps):
        basis[j] = v
        w = matvec(v)
        scale = max(scale, float(np.linalg.norm(w)))
        alpha.append(float(w @ v))
        for _ in range(2):
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        b = float(np.linalg.norm(w))
        if j == steps - 1 or b <= breakdown * max(scale, np.finfo(float).tiny):
            break
        beta.append(b)
        v = w / b
    return np.array(alpha), np.array(beta)


def ritz_nodes_weights(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature of T: nodes = eigenvalues, weights = squared first eigenvector entries.

    For a unit start vector v, ``sum_j weights_j f(nodes_j)`` approximates ``v^T f(H) v``
    (Golub & Meurant; Ghorbani et al. 2019, §2.2).
    """
    from scipy.linalg import eigh_tridiagonal  # scipy: slow import, used here only

    nodes, vectors = eigh_tridiagonal(alpha, beta)
    return nodes, vectors[0] ** 2


def slq_density(
    nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float
) -> np.ndarray:
    """The spectral density on ``grid``: Ritz nodes smoothed by Gaussians of width ``sigma``.

    Ghorbani et al. (2019, eq. 6): ``phi(t) = sum_i w_i N(t; node_i, sigma^2)``, with the
    weights of all start vectors pooled and normalised to sum to 1.
    """
    nodes, weights = np.asarray(nodes, float), np.asarray(weights, float)
    weights = weights / weights.sum()
    z = (np.asarray(grid, float)[:, None] - nodes[None, :]) / sigma
    return (np.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))) @ weights


def slq_from_values(values: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Ritz nodes and weights from one run's records, as ``{key: value}``."""
    pattern = re.compile(r"slq_(node|weight)/(\d+)/(\d+)$")
    found: dict[str, dict[tuple[int, int], float]] = {"node": {}, "weight": {}}
    for key, value in values.items():
        match = pattern.match(key)
        if match:
            found[match[1]][(int(match[2]), int(match[3]))] = value
    keys = sorted(found["node"])
    return (
        np.array([found["node"][k] for k in keys]),
        np.array([found["weight"][k] for k in keys]),
    )
