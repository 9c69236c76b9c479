import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_00_math.gradcheck import check_gradients, relative_error
from phase_00_math.strategies import seeds, sizes
from phase_04_attention.attention import (
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)
from phase_09_modern.ops.flash_attention import (
    flash_attention_backward,
    flash_attention_forward,
)

kernels = st.sampled_from(["numpy", "numba"])


def _grads_close(grad, reference, dy, tol):
    """Relative to the reference's size or dy's, whichever is larger: with one key dq and dk
    are exactly 0 in theory, and the two roundings of rowsum(dP * P) = rowsum(dO * O) leave
    ~1e-17 of them, which a plain relative error would call a 100% error."""
    scale = max(np.linalg.norm(reference), np.linalg.norm(dy.astype(np.float64)))
    return np.linalg.norm((grad - reference).astype(np.float64)) <= tol * scale


def _qkv(rng, lead, t_q, t_k, d, dv):
    return (rng.standard_normal((*lead, t_q, d)), rng.standard_normal((*lead, t_k, d)),
            rng.standard_normal((*lead, t_k, dv)))


@given(lead=st.lists(sizes(1, 2), max_size=2), t_q=sizes(1, 40), extra=sizes(0, 9),
       d=sizes(1, 8), dv=sizes(1, 5), block_q=sizes(1, 16), block_k=sizes(1, 16),
       causal=st.booleans(), kernel=kernels, seed=seeds())
def test_flash_equals_naive_attention_to_1e12(lead, t_q, extra, d, dv, block_q, block_k, causal,
                                              kernel, seed):
    rng = np.random.default_rng(seed)
    q, k, v = _qkv(rng, lead, t_q, t_q + extra, d, dv)
    q *= 2.0  # sharper softmax rows, so the running maximum really moves
    y, cache = flash_attention_forward(q, k, v, causal=causal, block_q=block_q,
                                       block_k=block_k, kernel=kernel)
    y_naive, naive = scaled_dot_product_attention_forward(q, k, v, causal=causal)
    assert relative_error(y, y_naive) <= 1e-12
    dy = rng.standard_normal(y.shape)
    for grad, grad_naive in zip(flash_attention_backward(dy, cache),
                                scaled_dot_product_attention_backward(dy, naive), strict=True):
        assert grad.shape == grad_naive.shape
        assert _grads_close(grad, grad_naive, dy, 1e-12)


@given(b=sizes(1, 2), t_q=sizes(2, 6), extra=sizes(0, 3), d=sizes(1, 3), block=sizes(1, 4),
       causal=st.booleans(), kernel=kernels, seed=seeds())
def test_flash_gradients(b, t_q, extra, d, block, causal, kernel, seed):
    # Tq >= 2 keeps Tk >= 2: with one key dq and dk are 0 in theory and rounding in practice
    rng = np.random.default_rng(seed)
    check_gradients(flash_attention_forward, flash_attention_backward,
                    *_qkv(rng, (b,), t_q, t_q + extra, d, 2), causal=causal, block_q=block,
                    block_k=block + 1, kernel=kernel, names=["q", "k", "v"])


@given(n=sizes(1, 3), t=sizes(1, 33), d=sizes(1, 6), block_q=sizes(1, 9), block_k=sizes(1, 9),
       causal=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]), seed=seeds())
def test_numba_tiles_agree_with_the_numpy_tiles(n, t, d, block_q, block_k, causal, dtype, seed):
    """The njit kernels and the NumPy reference: same algorithm, other summation order (and
    float64 accumulators in numba), so equal to rounding in both dtypes; dtype in = dtype out."""
    rng = np.random.default_rng(seed)
    q, k, v = (a.astype(dtype) for a in _qkv(rng, (n,), t, t, d, d))
    options = {"causal": causal, "block_q": block_q, "block_k": block_k}
    y_np, c_np = flash_attention_forward(q, k, v, kernel="numpy", **options)
    y_nb, c_nb = flash_attention_forward(q, k, v, kernel="numba", **options)
    tol = 1e-13 if dtype == np.float64 else 1e-5
    assert y_np.dtype == y_nb.dtype == dtype
    assert relative_error(y_nb, y_np) <= tol
    dy = rng.standard_normal(y_np.shape).astype(dtype)
    for g_nb, g_np in zip(flash_attention_backward(dy, c_nb), flash_attention_backward(dy, c_np),
                          strict=True):
        assert g_nb.dtype == dtype
        assert _grads_close(g_nb, g_np, dy, tol)


def test_equal_but_not_bitwise():
    """Another summation order: on this input the tiled result differs from the naive one in the
    last bits, yet stays within 1e-15 relative."""
    rng = np.random.default_rng(0)
    q, k, v = _qkv(rng, (2,), 64, 64, 16, 16)
    y, _ = flash_attention_forward(q, k, v, block_q=16, block_k=16)
    y_naive, _ = scaled_dot_product_attention_forward(q, k, v)
    assert not np.array_equal(y, y_naive)
    assert relative_error(y, y_naive) < 1e-15


def test_the_cache_holds_no_quadratic_array():
    rng = np.random.default_rng(0)
    t = 128
    q, k, v = _qkv(rng, (), t, t, 4, 4)
    _, cache = flash_attention_forward(q, k, v, causal=True, block_q=16, block_k=16)
    arrays = [a for a in cache if isinstance(a, np.ndarray)]
    assert arrays and max(a.size for a in arrays) <= t * 4


def test_causal_needs_at_least_as_many_keys_as_queries():
    with pytest.raises(ValueError, match="Tk >= Tq"):
        flash_attention_forward(np.zeros((3, 2)), np.zeros((2, 2)), np.zeros((2, 2)), causal=True)
    with pytest.raises(ValueError, match="kernel"):
        flash_attention_forward(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)),
                                kernel="cuda")


def test_measured_memory_is_quadratic_for_naive_and_linear_for_tiled():
    """The benchmark's measurement, at two small lengths: doubling T quadruples naive
    attention's peak (the (T, T) probabilities) and at most doubles the tiled one's."""
    from phase_09_modern.ops.flash_bench import _naive, _tiled, peak_extra_bytes

    rng = np.random.default_rng(0)
    peaks = {}
    for t in (256, 512):
        arrays = [rng.standard_normal((1, t, 16)).astype(np.float32) for _ in range(4)]
        peaks[t] = (peak_extra_bytes(_naive, *arrays),
                    peak_extra_bytes(_tiled(64, "numpy"), *arrays))
    naive_growth = peaks[512][0] / peaks[256][0]
    tiled_growth = peaks[512][1] / peaks[256][1]
    assert 3.5 < naive_growth < 4.5
    assert tiled_growth < 2.2
    assert peaks[512][1] < peaks[512][0] / 4
