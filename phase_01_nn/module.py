"""``Module`` and ``Sequential``: how ops become layers, and layers become models.

A module owns its parameters and their gradients as dicts of arrays with the same keys. ``forward``
remembers what ``backward`` needs; ``backward`` takes the gradient of the output, ADDS the
parameter gradients into ``grads`` (so a weight shared by two modules collects both
contributions) and returns the gradient of the input. ``zero_grad`` resets the sums. The large
layers of phases 4 and 5 (layer norm, attention, the feed-forward, the GPT's head) release what
their forward remembered as their backward uses it (``take_cache``), as torch frees an autograd
graph's saved tensors: between two training steps nothing of the last forward is held, and the
backward's temporaries reuse the memory of the layers it has passed. Phase 1's layers keep
their caches, so that a test can run one backward twice and watch the gradients add up.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from phase_00_math.gradcheck import numerical_gradient, relative_error, upstream_rng


class Module:
    """Base class: ``params`` and ``grads`` dicts, child modules in ``modules``."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.modules: dict[str, Module] = {}
        self.training = True

    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register a parameter and a zero gradient of the same shape and dtype."""
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def add_buffer(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register state that is saved and loaded but not trained (running statistics)."""
        self.buffers[name] = value
        return value

    def add_module(self, name: str, module: Module) -> Module:
        self.modules[name] = module
        return module

    def take_cache(self, attribute: str = "_cache"):
        """What the last forward stored in ``attribute``, which is then cleared: a forward's
        cache serves one backward. A second backward without a forward gets a clear error."""
        cache = getattr(self, attribute)
        if cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() needs a forward first (each "
                               f"forward's cache is used by one backward, which releases it)")
        setattr(self, attribute, None)
        return cache

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, dout):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def __call__(self, *inputs):
        return self.forward(*inputs)

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self.modules.items():
            yield from child.named_modules(f"{prefix}{name}.")

    def parameters(self) -> dict[str, np.ndarray]:
        """Every parameter of this module and its children by dotted name: the arrays themselves."""
        return {f"{p}{k}": v for p, m in self.named_modules() for k, v in m.params.items()}

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradient arrays, with the same keys as ``parameters()``."""
        return {f"{p}{k}": v for p, m in self.named_modules() for k, v in m.grads.items()}

    def num_parameters(self) -> int:
        return sum(v.size for v in self.parameters().values())

    def zero_grad(self) -> None:
        for _, module in self.named_modules():
            for grad in module.grads.values():
                grad.fill(0)

    def train(self, mode: bool = True) -> Module:
        for _, module in self.named_modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        arrays = self.parameters()
        for prefix, module in self.named_modules():
            arrays.update({f"{prefix}{k}": v for k, v in module.buffers.items()})
        return arrays

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by dotted name."""
        return {name: value.copy() for name, value in self._state_arrays().items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` into the existing arrays, after checking names and shapes match."""
        own = self._state_arrays()
        missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
        if missing or unexpected:
            raise KeyError(
                f"state does not match the model: missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}"
            )
        for name, value in state.items():
            if own[name].shape != np.shape(value):
                raise ValueError(
                    f"{name!r} has shape {own[name].shape} in the model but "
                    f"{np.shape(value)} in the state"
                )
        for name, value in state.items():
            own[name][...] = value


class Sequential(Module):
    """Modules applied one after another; backward runs them in reverse."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for index, layer in enumerate(layers):
            self.add_module(str(index), layer)

    def __getitem__(self, index: int) -> Module:
        return self.modules[str(index)]

    def __len__(self) -> int:
        return len(self.modules)

    def forward(self, x):
        for layer in self.modules.values():
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.modules.values()):
            dout = layer.backward(dout)
        return dout


def check_module_gradients(
    module: Module, x: np.ndarray, *, tol: float = 1e-7, seed: int = 0, h: float = 1e-6
) -> dict[str, float]:
    """Gradient-check a whole module in float64: the input gradient and every parameter's.

    The scalar is ``sum(module(x) * dout)`` for a random ``dout``. Each parameter is perturbed in
    place (and restored), so the forward must be deterministic (dropout off or mask fixed).
    Returns ``{"input" or parameter name: relative error}``; raises ``AssertionError`` on failure.
    """
    params = module.parameters()
    for name, value in params.items():
        if value.dtype != np.float64:
            raise TypeError(f"gradient checks need float64; parameter {name!r} is {value.dtype}")
    out = module.forward(x)
    dout = upstream_rng(seed).standard_normal(out.shape)
    module.zero_grad()
    dx = module.backward(dout)
    analytic = {name: grad.copy() for name, grad in module.gradients().items()}

    def loss() -> float:
        return float(np.sum(module.forward(x) * dout))

    errors: dict[str, float] = {}
    if np.issubdtype(np.asarray(x).dtype, np.floating):
        numeric = numerical_gradient(lambda v: float(np.sum(module.forward(v) * dout)), x, h=h)
        errors["input"] = relative_error(dx, numeric)
    for name, value in params.items():
        numeric = numerical_gradient(lambda v, value=value: _loss_with(value, v, loss), value, h=h)
        errors[name] = relative_error(analytic[name], numeric)
    failures = {k: v for k, v in errors.items() if not v <= tol}
    if failures:
        detail = ", ".join(f"{k}: relative error {v:.3e}" for k, v in failures.items())
        raise AssertionError(f"module gradient check failed (tol {tol:.0e}) for {detail}")
    return errors


def _loss_with(param: np.ndarray, value: np.ndarray, loss) -> float:
    """``loss()`` with ``param`` temporarily holding ``value``."""
    saved = param.copy()
    param[...] = value
    try:
        return loss()
    finally:
        param[...] = saved
