"""The Fréchet distance between two Gaussians fitted to feature sets (FVD, FID), in float64.

``d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The trace of the matrix square root is
computed from the eigenvalues of the symmetric ``S1^(1/2) S2 S1^(1/2)`` (same eigenvalues as
``S1 S2``), which needs no general ``sqrtm`` and has no imaginary round-off to discard.

The covariances divide by the clip count N, as StyleGAN-V's FVD does (``FeatureStats.get_mean_cov`` in
its ``src/metrics/metric_utils.py``); the TF FVD of Unterthiner et al. (TF-GAN's
``frechet_classifier_distance_from_activations``) and ``np.cov`` divide by N - 1. Fixtures recorded from
StyleGAN-V's code (tests/data/record_stylegan_v.py) pin this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VividZooError


@dataclass
class Gaussian:
    mean: np.ndarray
    covariance: np.ndarray
    count: int
    """How many feature vectors it was fitted to."""


def fit_gaussian(features: np.ndarray) -> Gaussian:
    """Mean and covariance divided by N (as StyleGAN-V's FVD) of ``(count, dim)`` features."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise VividZooError(f"a Fréchet distance needs at least 2 feature vectors per side, got shape {features.shape}")
    return Gaussian(features.mean(axis=0), np.cov(features, rowvar=False, bias=True), features.shape[0])


def singular_covariance_warning(name: str, generated: Gaussian, reference: Gaussian) -> str | None:
    """A warning when either side has no more clips than feature dimensions: its covariance is singular."""
    dimension = generated.mean.shape[0]
    if min(generated.count, reference.count) > dimension:
        return None
    return (f"warning: FVD of {name!r} comes from {generated.count} generated and {reference.count} reference "
            f"clips, not more than the {dimension} feature dimensions: the covariances are singular and FVD "
            "depends strongly on the clip count; compare only runs with equal counts")


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(first: Gaussian, second: Gaussian) -> float:
    """Squared Fréchet distance between two Gaussians (the value papers report as FID/FVD)."""
    if first.mean.shape != second.mean.shape:
        raise VividZooError(f"feature sizes differ: {first.mean.shape[0]} and {second.mean.shape[0]}")
    mean_term = float(np.sum((first.mean - second.mean) ** 2))
    root = _symmetric_sqrt(np.asarray(first.covariance, dtype=np.float64))
    middle = root @ np.asarray(second.covariance, dtype=np.float64) @ root
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    return mean_term + float(np.trace(first.covariance) + np.trace(second.covariance) - 2.0 * cross)
