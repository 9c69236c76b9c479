import numpy as np

from phase_06_torch_parity.harness import _at_rounding


def test_a_cancelling_gradient_within_rounding_of_the_largest_is_accepted():
    big = np.array([2.9, -1.0])
    tiny = np.array([2e-10, -1e-10])
    names, refs = ("q", "kv"), (tiny, big)
    assert _at_rounding(names, (tiny + 4e-15, big), refs, np.float64) == {"q", "kv"}


def test_a_wrong_gradient_is_not_rounding_however_small():
    big = np.array([2.9, -1.0])
    tiny = np.array([2e-10, -1e-10])
    names, refs = ("q", "kv"), (tiny, big)
    assert "kv" not in _at_rounding(names, (tiny, 2.0 * big), refs, np.float64)
    assert "q" not in _at_rounding(names, (tiny, big), (tiny * 1e6, big), np.float64)
