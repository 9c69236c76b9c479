import math

import numpy as np
import pytest
from hypothesis import given

from phase_00_math.erf import (
    erf,
    erf_reference,
    erfc,
    erfc_reference,
    normal_cdf,
    normal_cdf_reference,
)
from phase_00_math.strategies import seeds, shapes


@pytest.mark.parametrize(("kernel", "reference"), [(erf, erf_reference), (erfc, erfc_reference),
                                                   (normal_cdf, normal_cdf_reference)])
@given(shape=shapes(min_dims=0), seed=seeds())
def test_kernels_match_references(kernel, reference, shape, seed):
    x = 3.0 * np.random.default_rng(seed).standard_normal(shape)
    np.testing.assert_array_equal(kernel(x), reference(x))


def test_known_values_and_symmetry():
    x = np.array([0.0, 0.5, 1.0, -1.0, 6.0])
    np.testing.assert_allclose(erf(x), [0.0, 0.5204998778130465, 0.8427007929497149,
                                        -0.8427007929497149, 1.0], rtol=1e-15)
    assert erf(np.float64(2.0)).shape == ()
    assert math.isclose(float(erf(np.array(2.0))), math.erf(2.0))


def test_normal_cdf_keeps_its_digits_in_the_lower_tail():
    # Phi(-10) = 7.619853024160527e-24; 1 + erf(-10 / sqrt 2) is exactly 0 in float64.
    assert math.isclose(float(normal_cdf(np.array(-10.0))), 7.619853024160527e-24, rel_tol=1e-12)
    assert 0.5 * (1.0 + float(erf(np.array(-10.0 / math.sqrt(2))))) == 0.0
    np.testing.assert_allclose(normal_cdf(np.array([0.0, 1.0])), [0.5, 0.8413447460685429],
                               rtol=1e-15)


def test_keeps_float32_and_accepts_non_contiguous():
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4).T
    out = erf(x)
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_allclose(out, erf_reference(x), rtol=1e-6)


@given(shape=shapes(min_dims=0), seed=seeds())
def test_the_normal_cdf_kernel_keeps_float32_within_rounding(shape, seed):
    """In float32 the kernel rounds once (it works in float64 inside), the composition at each
    step: they agree to a few float32 ulps, and the kernel keeps the dtype."""
    x = (3.0 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
    assert normal_cdf(x).dtype == np.float32
    np.testing.assert_allclose(normal_cdf(x), normal_cdf_reference(x), rtol=1e-6, atol=1e-7)
