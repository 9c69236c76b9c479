"""Root pytest configuration shared by every phase.

- Hypothesis profiles: ``dev`` (the default, random) and ``ci`` (derandomized, chosen when
  ``CI=true``), and ``thorough`` (500 examples a test, chosen with
  ``HYPOTHESIS_PROFILE=thorough``). All have ``deadline=None``: numba compiles on the first call.
- Every test is marked with its phase (``phase_02`` for ``phase_02_sequence/...``), so that
  ``pytest -m phase_02`` runs one phase from anywhere.
- One BLAS thread per test process, set before anything imports NumPy: the tests' matrices are
  small, and on a busy 2-core machine a second spinning BLAS thread made a training test 11
  times slower.
"""

import os
import re
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

if "numpy" not in sys.modules:  # pytest and hypothesis do not load it; nothing else has yet
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

settings.register_profile(
    "dev", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=25,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", deadline=None, max_examples=500, suppress_health_check=[HealthCheck.too_slow]
)
_default = "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))

_PHASE_DIR = re.compile(r"^phase_(\d{2})_")


def pytest_configure(config):
    for number in range(10):
        config.addinivalue_line("markers", f"phase_{number:02d}: tests of phase {number}")
    config.addinivalue_line("markers", "slow: a test that takes more than a few seconds")


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parent
    for item in items:
        try:
            top = Path(item.fspath).resolve().relative_to(root).parts[0]
        except ValueError:
            continue
        match = _PHASE_DIR.match(top)
        if match:
            item.add_marker(f"phase_{match.group(1)}")
