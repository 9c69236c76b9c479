"""Which NumPy ops exist, and which of them the registry checks."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

NUMPY_PHASES = ("phase_00_math", "phase_01_nn", "phase_02_sequence", "phase_03_tokenization",
                "phase_04_attention", "phase_05_transformer_numpy")


def numpy_ops(packages=NUMPY_PHASES) -> set[str]:
    """``module.function`` for every ``*_forward`` function defined in the packages' modules
    (tests and ``__main__`` excluded). Packages that do not exist yet are skipped."""
    ops: set[str] = set()
    for package_name in packages:
        try:
            package = importlib.import_module(package_name)
        except ModuleNotFoundError:
            continue
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            leaf = info.name.rsplit(".", 1)[-1]
            if ".tests" in info.name or leaf in ("__main__", "bench"):
                continue
            module = importlib.import_module(info.name)
            for name, function in inspect.getmembers(module, inspect.isfunction):
                if name.endswith("_forward") and function.__module__ == info.name:
                    ops.add(f"{info.name}.{name}")
    return ops


def missing_cases(cases, packages=NUMPY_PHASES) -> list[str]:
    """The ops that no case in ``cases`` covers, sorted."""
    return sorted(numpy_ops(packages) - {case.op for case in cases})
