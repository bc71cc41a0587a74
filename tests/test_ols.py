"""OLS with and without the BN reparameterisation (Morwani 2020 §2, Cai et al. 2019)."""

import numpy as np
import pytest

from normstudy.ols import OLS_SCHEMA, Problem, bn_gd, plain_gd, trajectories


def test_problem_has_the_requested_condition_number_and_solution():
    problem = Problem.make(3, 1000.0, seed=4)
    eigenvalues = np.linalg.eigvalsh(problem.hessian)
    assert eigenvalues.max() / eigenvalues.min() == pytest.approx(1000.0)
    assert problem.excess_loss(problem.solution) == pytest.approx(0.0, abs=1e-15)
    assert np.allclose(np.linalg.solve(problem.hessian, problem.g), problem.solution)


def test_plain_gd_converges_below_two_over_lambda_max_and_diverges_above():
    problem = Problem.make(2, 10.0)
    w0 = np.ones(2)
    assert problem.excess_loss(plain_gd(problem, 1.9 / 10.0, 500, w0)[-1]) < 1e-8
    assert problem.excess_loss(plain_gd(problem, 2.1 / 10.0, 500, w0)[-1]) > 1e3


def test_bn_converges_at_learning_rates_where_plain_gd_diverges():
    problem = Problem.make(2, 1000.0)
    w0 = np.array([1.0, -0.5])
    assert problem.excess_loss(bn_gd(problem, 0.5, 2000, w0)[-1]) < 1e-6
    with np.errstate(over="ignore", invalid="ignore"):
        diverged = problem.excess_loss(plain_gd(problem, 0.5, 50, w0)[-1])
    assert not np.isfinite(diverged) or diverged > 1e6


def test_bn_effective_weight_is_scale_invariant_in_w():
    problem = Problem.make(3, 10.0)
    w0 = np.array([0.3, -1.0, 2.0])
    first = bn_gd(problem, 0.1, 0, w0)[0]
    assert np.allclose(first, bn_gd(problem, 0.1, 0, 7.0 * w0)[0])
    assert first @ problem.hessian @ first == pytest.approx(1.0)


def test_trajectory_table_shape():
    table = trajectories([2, 3], [10.0], [0.1], steps=5)
    assert table.schema.equals(OLS_SCHEMA, check_metadata=False)
    assert table.num_rows == 2 * 2 * 6
    frame = table.to_pandas()
    assert frame.loc[frame["d"] == 2, "w_2"].isna().all()
    assert frame.loc[frame["d"] == 3, "w_2"].notna().all()
