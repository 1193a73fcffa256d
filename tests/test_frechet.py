"""The Fréchet distance against closed forms, scipy's general matrix square root, and StyleGAN-V's FVD code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from vividzoo_core.errors import VividZooError
from vividzoo_core.evaluation.frechet import Gaussian, fit_gaussian, frechet_distance, singular_covariance_warning

STYLEGAN_V = Path(__file__).parent / "data" / "stylegan_v.npz"
"""Recorded from StyleGAN-V's own metric code by tests/data/record_stylegan_v.py."""


def random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


def test_identical_gaussians_are_at_distance_zero():
    rng = np.random.default_rng(0)
    g = Gaussian(rng.normal(size=8), random_covariance(rng, 8), 100)
    assert frechet_distance(g, g) == pytest.approx(0.0, abs=1e-9)


def test_shifted_means_give_the_squared_shift():
    rng = np.random.default_rng(1)
    cov, mean, shift = random_covariance(rng, 6), rng.normal(size=6), rng.normal(size=6)
    d = frechet_distance(Gaussian(mean, cov, 10), Gaussian(mean + shift, cov, 10))
    assert d == pytest.approx(float(shift @ shift), rel=1e-9)


def test_scaled_covariance_matches_the_formula():
    # S2 = k^2 S1  =>  tr(S1 + k^2 S1 - 2 k S1) = (1 - k)^2 tr(S1)
    rng = np.random.default_rng(2)
    cov, mean, k = random_covariance(rng, 5), np.zeros(5), 3.0
    d = frechet_distance(Gaussian(mean, cov, 10), Gaussian(mean, k**2 * cov, 10))
    assert d == pytest.approx((1 - k) ** 2 * np.trace(cov), rel=1e-9)


def test_diagonal_covariances_match_the_per_axis_formula():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    d = frechet_distance(Gaussian(np.zeros(3), np.diag(a), 10), Gaussian(np.ones(3), np.diag(b), 10))
    assert d == pytest.approx(3.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), rel=1e-12)


def test_matches_scipy_sqrtm_on_random_features():
    rng = np.random.default_rng(3)
    first = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))
    second = rng.normal(size=(150, 12)) @ rng.normal(size=(12, 12)) + 0.5
    g1, g2 = fit_gaussian(first), fit_gaussian(second)
    root, _ = scipy.linalg.sqrtm(g1.covariance @ g2.covariance, disp=False)
    expected = np.sum((g1.mean - g2.mean) ** 2) + np.trace(g1.covariance + g2.covariance - 2 * np.real(root))
    assert frechet_distance(g1, g2) == pytest.approx(float(expected), rel=1e-9)
    assert g1.count == 200 and np.allclose(g1.covariance, np.cov(first, rowvar=False, bias=True))


def test_too_few_features_are_refused():
    with pytest.raises(VividZooError, match="at least 2"):
        fit_gaussian(np.zeros((1, 4)))


def test_mean_covariance_and_fvd_match_stylegan_v():
    """StyleGAN-V's FeatureStats divides the covariance by N (np.cov's N - 1 was 11.5% higher at 8 clips)."""
    recorded = np.load(STYLEGAN_V)
    generated, reference = recorded["features_generated"], recorded["features_reference"]
    assert generated.shape[1] == 16
    for count in recorded["clip_counts"]:  # 8, 16, 17 and 240 clips against 16 feature dimensions
        ours = fit_gaussian(generated[:count]), fit_gaussian(reference[:count])
        for gaussian, side in zip(ours, ("generated", "reference")):
            assert gaussian.count == count
            np.testing.assert_allclose(gaussian.mean, recorded[f"mean_{side}_{count}"], rtol=0, atol=1e-12)
            np.testing.assert_allclose(gaussian.covariance, recorded[f"covariance_{side}_{count}"], rtol=0, atol=1e-10)
        assert frechet_distance(*ours) == pytest.approx(float(recorded[f"fvd_{count}"]), rel=1e-7)


def test_singular_covariances_are_warned_about_up_to_equal_counts():
    rng = np.random.default_rng(4)

    def side(count: int) -> Gaussian:
        return fit_gaussian(rng.normal(size=(count, 6)))

    at_equality = singular_covariance_warning("trained", side(6), side(40))
    assert at_equality and "6 generated and 40 reference clips" in at_equality and "6 feature dimensions" in at_equality
    assert np.linalg.matrix_rank(side(6).covariance) < 6
    assert singular_covariance_warning("trained", side(40), side(6)) is not None
    assert singular_covariance_warning("trained", side(7), side(7)) is None
