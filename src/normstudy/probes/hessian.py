"""Hessian spectrum of the training loss: top eigenvalues and density (Ghorbani et al. 2019).

"Is Batch Norm unique?" (2020, §6) estimate the Hessian of the cross-entropy loss "using
the Lanczos algorithm as described in Ghorbani et al. (2019) using 512 samples", and
compare lambda_max and the outlier ratio lambda_1 / lambda_10; Morwani (2020, §4) track
the top 10 eigenvalues. Both need only Hessian-vector products, computed here by double
backward through the training loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from normstudy.probes.base import (
    Probe,
    ProbeContext,
    ProbeFailure,
    Record,
    flat,
    loss_at,
    probe_batch,
    set_mode,
)
from normstudy.probes.registry import register_probe
from normstudy.spectral import lanczos_tridiagonal, ritz_nodes_weights

Matvec = Callable[[np.ndarray], np.ndarray]


def hessian_vector_product(loss: torch.Tensor, params: list[torch.Tensor]) -> tuple[Matvec, int]:
    """``v -> H v`` for the Hessian of ``loss`` w.r.t. ``params`` (float64 numpy in and out).

    The gradient graph is built once, so every product sees the same forward pass (the
    same batch statistics and the same normalizer noise).
    """
    grads = torch.autograd.grad(loss, params, create_graph=True)
    sizes = [p.numel() for p in params]
    reference = params[0]

    def matvec(v: np.ndarray) -> np.ndarray:
        vector = torch.as_tensor(np.asarray(v, dtype=np.float64).reshape(-1))
        vector = vector.to(device=reference.device, dtype=reference.dtype)
        chunks = [c.view_as(p) for c, p in zip(vector.split(sizes), params, strict=True)]
        pairs = [(g, c) for g, c in zip(grads, chunks, strict=True) if g.requires_grad]
        products: list[torch.Tensor | None] = [None] * len(params)
        if pairs:
            products = list(
                torch.autograd.grad(
                    [g for g, _ in pairs],
                    params,
                    grad_outputs=[c for _, c in pairs],
                    retain_graph=True,
                    allow_unused=True,
                )
            )
        full = [
            torch.zeros_like(p) if h is None else h for h, p in zip(products, params, strict=True)
        ]
        return flat(full).detach().to("cpu", torch.float64).numpy()

    return matvec, sum(sizes)


def top_eigenvalues(
    matvec: Matvec, n: int, k: int, v0: np.ndarray, tol: float, maxiter: int
) -> np.ndarray:
    """The ``k`` largest (algebraic) eigenvalues, descending.

    ARPACK's implicitly restarted Lanczos (:func:`scipy.sparse.linalg.eigsh`, which="LA")
    on a :class:`LinearOperator`; for ``n <= 2k + 1`` the Hessian is formed column by
    column instead. Raises ``ArpackNoConvergence`` if ARPACK does not converge.
    """
    if n <= 2 * k + 1:
        dense = np.stack([matvec(column) for column in np.eye(n)], axis=1)
        values = np.linalg.eigvalsh((dense + dense.T) / 2)
    else:
        from scipy.sparse.linalg import LinearOperator, eigsh  # scipy: slow import, used here

        operator = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        values = eigsh(
            operator, k=k, which="LA", v0=v0, tol=tol, maxiter=maxiter, return_eigenvectors=False
        )
    return np.sort(values)[::-1][:k]


def rademacher(n: int, generator: torch.Generator) -> np.ndarray:
    signs = torch.randint(0, 2, (n,), generator=generator, dtype=torch.int64) * 2 - 1
    return signs.double().numpy() / math.sqrt(n)


@register_probe
class Hessian(Probe):
    """Top-k eigenvalues and spectral density of the Hessian of the training loss.

    Over the trainable parameters (``requires_grad``), on the first ``n_samples`` probe
    examples (512 as in "Is Batch Norm unique?" §6), in ``mode`` "train" (batch
    statistics) or "eval" (running statistics: Ghorbani et al. 2019 show that the latter
    makes the Hessian of a Batch Norm network ill-conditioned). Records:

    - ``mode_train`` or ``mode_eval`` = 1, ``loss``, ``n_params``, ``n_samples``;
    - ``lambda_1`` ... ``lambda_k`` (descending) and ``outlier_ratio`` = lambda_1 / lambda_k;
    - stochastic Lanczos quadrature (Ghorbani et al. 2019, §2.2): for each of
      ``n_vectors`` Rademacher start vectors v (drawn from the probes' generator),
      ``lanczos_steps`` steps give Ritz nodes and weights, recorded as
      ``slq_node/<vector>/<j>`` and ``slq_weight/<vector>/<j>`` (the weights of one vector
      sum to 1); :func:`slq_density` turns them into a density; ``trace_estimate`` is
      Hutchinson's ``n * mean(v^T H v)``;
    - ``hvp_count``: Hessian-vector products used.
    """

    name = "hessian"

    def samples_needed(self, config: dict) -> int:
        return self.settings["n_samples"]

    def run(self, ctx: ProbeContext) -> list[Record]:
        settings = self.settings
        set_mode(ctx.model, settings["mode"])
        params = [p for p in ctx.model.parameters() if p.requires_grad]
        if not params:
            raise ProbeFailure("the model has no trainable parameters")
        x, y = probe_batch(ctx, settings["n_samples"])
        loss = loss_at(ctx, x, y)
        counted, n = hessian_vector_product(loss, params)
        count = 0

        def matvec(v: np.ndarray) -> np.ndarray:
            nonlocal count
            count += 1
            product = counted(v)
            if not np.isfinite(product).all():
                raise ProbeFailure("non-finite Hessian-vector product")
            return product

        k = min(settings["k"], n)
        v0 = torch.randn(n, generator=ctx.generator, dtype=torch.float64).numpy()
        eigenvalues = top_eigenvalues(matvec, n, k, v0, settings["tol"], settings["maxiter"])
        records = [
            self.record(f"mode_{settings['mode']}", 1.0),
            self.record("loss", loss.item()),
            self.record("n_params", n),
            self.record("n_samples", len(y)),
        ]
        records += [self.record(f"lambda_{i + 1}", v) for i, v in enumerate(eigenvalues)]
        ratio = eigenvalues[0] / eigenvalues[-1] if eigenvalues[-1] != 0 else math.nan
        records.append(self.record("outlier_ratio", ratio))
        quadratic_forms = []
        for vector in range(settings["n_vectors"]):
            start = rademacher(n, ctx.generator)
            alpha, beta = lanczos_tridiagonal(matvec, start, settings["lanczos_steps"])
            quadratic_forms.append(alpha[0])
            nodes, weights = ritz_nodes_weights(alpha, beta)
            records += [self.record(f"slq_node/{vector}/{j}", v) for j, v in enumerate(nodes)]
            records += [self.record(f"slq_weight/{vector}/{j}", w) for j, w in enumerate(weights)]
        records.append(self.record("trace_estimate", n * float(np.mean(quadratic_forms))))
        records.append(self.record("hvp_count", count))
        return records
