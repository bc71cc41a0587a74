"""Ordinary least squares with and without the Batch Norm reparameterisation (Morwani 2020 §2).

The population problem ``min_w 1/2 E[(y - x^T w)^2]`` with ``H = E[x x^T]`` and
``g = E[x y] = H u`` is solved exactly by ``u``. Plain gradient descent uses
``grad = H w - g`` and is stable only for ``lr < 2 / lambda_max(H)``. With Batch Norm
(zero-mean inputs) the model is ``gamma * x^T w / sqrt(w^T H w)``: a reparameterisation in
approximately polar coordinates whose effective weight is ``gamma w / sqrt(w^T H w)``;
Cai et al. (2019) show gradient descent on (gamma, w) converges for any lr up to 1 and at
a rate set by the pseudo-condition number of ``H - g g^T / (u^T H u)`` (independent of
kappa for d = 2). Pure numpy; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

OLS_SCHEMA = pa.schema(
    [
        pa.field("d", pa.int64()),
        pa.field("kappa", pa.float64()),
        pa.field("method", pa.string()),
        pa.field("lr", pa.float64()),
        pa.field("step", pa.int64()),
        pa.field("loss", pa.float64()),
        pa.field("distance", pa.float64()),
        pa.field("w_0", pa.float64()),
        pa.field("w_1", pa.float64()),
        pa.field("w_2", pa.float64()),
    ],
    metadata={
        "description": "OLS trajectories (Morwani 2020 §2): loss is the excess population "
        "loss 1/2 (w - u)^T H (w - u) of the effective weight w (gamma w / sqrt(w^T H w) for "
        "method 'bn'), distance is ||w - u||; w_2 is null for d = 2"
    },
)


@dataclass(frozen=True)
class Problem:
    """A d-dimensional OLS problem with condition number ``kappa``."""

    hessian: np.ndarray
    solution: np.ndarray

    @classmethod
    def make(cls, d: int, kappa: float, seed: int = 0) -> Problem:
        """Eigenvalues spread geometrically from 1 to kappa, in a random rotation."""
        rng = np.random.default_rng(seed)
        eigenvalues = np.geomspace(1.0, kappa, d)
        rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
        hessian = rotation @ np.diag(eigenvalues) @ rotation.T
        solution = rng.standard_normal(d)
        return cls(hessian, solution / np.linalg.norm(solution))

    @property
    def g(self) -> np.ndarray:
        return self.hessian @ self.solution

    def excess_loss(self, w: np.ndarray) -> float:
        delta = w - self.solution
        return float(0.5 * delta @ self.hessian @ delta)


def plain_gd(problem: Problem, lr: float, steps: int, w0: np.ndarray) -> list[np.ndarray]:
    """Iterates of gradient descent on 1/2 E[(y - x^T w)^2]."""
    w, path = w0.copy(), [w0.copy()]
    for _ in range(steps):
        w = w - lr * (problem.hessian @ w - problem.g)
        path.append(w.copy())
    return path


def bn_gd(problem: Problem, lr: float, steps: int, w0: np.ndarray) -> list[np.ndarray]:
    """Effective weights of gradient descent on (gamma, w) under the BN reparameterisation.

    Loss 1/2 E[y^2] - gamma g^T w / s + gamma^2 / 2 with s = sqrt(w^T H w); gamma starts at 1.
    """
    H, g = problem.hessian, problem.g
    w, gamma = w0.copy(), 1.0
    path = [gamma * w / np.sqrt(w @ H @ w)]
    for _ in range(steps):
        s = np.sqrt(w @ H @ w)
        grad_gamma = gamma - g @ w / s
        grad_w = -gamma * (g / s - (g @ w) * (H @ w) / s**3)
        gamma, w = gamma - lr * grad_gamma, w - lr * grad_w
        path.append(gamma * w / np.sqrt(w @ H @ w))
    return path


def trajectories(
    dims: list[int], kappas: list[float], lrs: list[float], steps: int, seed: int = 0
) -> pa.Table:
    """Every (d, kappa, method, lr) trajectory as rows of :data:`OLS_SCHEMA`."""
    rows: dict[str, list] = {field.name: [] for field in OLS_SCHEMA}
    for d in dims:
        for kappa in kappas:
            problem = Problem.make(d, kappa, seed)
            w0 = np.random.default_rng(seed + 1).standard_normal(d)
            for method, solver in (("gd", plain_gd), ("bn", bn_gd)):
                for lr in lrs:
                    with np.errstate(over="ignore", invalid="ignore"):
                        path = solver(problem, lr, steps, w0)
                    for step, w in enumerate(path):
                        rows["d"].append(d)
                        rows["kappa"].append(float(kappa))
                        rows["method"].append(method)
                        rows["lr"].append(float(lr))
                        rows["step"].append(step)
                        with np.errstate(over="ignore", invalid="ignore"):
                            rows["loss"].append(problem.excess_loss(w))
                            rows["distance"].append(float(np.linalg.norm(w - problem.solution)))
                        for i in range(3):
                            rows[f"w_{i}"].append(float(w[i]) if i < d else None)
    return pa.table(rows, schema=OLS_SCHEMA)
