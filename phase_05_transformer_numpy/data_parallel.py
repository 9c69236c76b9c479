"""Data parallelism on one machine: each core takes a part of the batch.

The loss of a step is the mean over the batch's B sequences. Cut the batch into parts of n_1,
..., n_W sequences; the mean over the whole batch is the parts' means weighted by their sizes,

    L = sum_w (n_w / B) L_w,      so      dL/dtheta = sum_w (n_w / B) dL_w/dtheta.

So W workers can each run the forward and backward of their own part, at the same time, and the
step's gradient is the weighted sum of theirs. Each worker needs its own copy of what a forward
remembers for its backward (the caches) and its own gradient arrays; the parameters themselves are
only read, so all workers share the same arrays. ``replicate`` makes such a worker: a copy of the
model whose ``params`` are the model's arrays and whose ``grads`` are new. Worker 0 is the model
itself; ``DataParallel.loss_and_gradients`` adds the others' gradients into it, and the optimizer
steps the model as before. This is torch's ``DistributedDataParallel`` (Li et al. 2020, "PyTorch
Distributed") on one machine, with threads where DDP runs one process per device and sums the
gradients with an all-reduce.

Threads, not processes, because the work is inside NumPy, BLAS and numba: NumPy releases Python's
global interpreter lock in its loops over arrays and its BLAS calls, and the numba kernels of
phases 0, 1 and 4 are compiled with ``nogil=True``, so two threads do arithmetic on two cores at
once. What holds the lock is the Python between the calls, a small share of a step.

Why it beats a threaded BLAS: with one BLAS thread per worker, both cores work through the whole
step, softmax, GELU, layer norm and all, where a two-thread BLAS splits only the matrix products
and leaves the rest of the step on one core (and its idle thread spins, taking the second core
from anything else). Measured in ``phase_05_transformer_numpy/notes/05_speed.md`` (5.4).
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from phase_01_nn.dropout import Dropout
from phase_01_nn.module import Module


def replicate(module: Module) -> Module:
    """A worker's copy of ``module``: the same parameter arrays, new zero gradients, its own
    caches, children replicated alike (attributes that name a child point to the child's copy)."""
    twin = copy.copy(module)
    twin.grads = {name: np.zeros_like(grad) for name, grad in module.grads.items()}
    twin.modules = {name: replicate(child) for name, child in module.modules.items()}
    copies = {id(child): twin.modules[name] for name, child in module.modules.items()}
    for attribute, value in vars(module).items():
        if isinstance(value, Module) and id(value) in copies:
            setattr(twin, attribute, copies[id(value)])
    return twin


def split_sizes(batch: int, workers: int) -> list[int]:
    """How many sequences each worker takes: as equal as can be, the larger parts first."""
    return [batch // workers + (w < batch % workers) for w in range(workers)]


class DataParallel:
    """``loss_and_gradients(ids, targets)``: the model's gradients of the batch's mean loss,
    computed by ``workers`` threads on parts of the batch; returns the loss.

    Give each worker one BLAS thread (``OPENBLAS_NUM_THREADS=1``, the default of phase 5's
    commands): W workers with W BLAS threads each would ask for W * W cores.
    """

    def __init__(self, model: Module, workers: int = 1) -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.model, self.workers = model, workers
        self.replicas = [model] + [replicate(model) for _ in range(workers - 1)]
        self._pool = ThreadPoolExecutor(workers - 1, thread_name_prefix="tfs-worker") \
            if workers > 1 else None
        # found once: each replica's modules beside the model's, and the model's dropout
        # generator (None without dropout)
        self._twins = [[(m, t) for (_, m), (_, t) in zip(model.named_modules(),
                                                         replica.named_modules(), strict=True)]
                       for replica in self.replicas[1:]]
        dropouts = [m for _, m in model.named_modules() if isinstance(m, Dropout) and m.p > 0]
        self._dropout_rng = dropouts[0].rng if dropouts else None

    def loss_and_gradients(self, ids, targets) -> float:
        """Zero the model's gradients, then fill them with those of the mean loss over
        (ids, targets), (B, T) each; returns that loss as a float. One worker: the plain step,
        ``zero_grad``, ``forward``, ``backward`` on the model."""
        ids, targets = np.asarray(ids), np.asarray(targets)
        batch = ids.shape[0]
        if batch < self.workers:
            raise ValueError(f"a batch of {batch} sequences cannot be split across "
                             f"{self.workers} workers: use a batch of at least {self.workers} "
                             f"or fewer workers")
        self._sync_replicas()
        starts = np.cumsum([0, *split_sizes(batch, self.workers)])
        parts = [(replica, slice(a, b), (b - a) / batch)
                 for replica, a, b in zip(self.replicas, starts[:-1], starts[1:], strict=True)]

        def run(replica: Module, rows: slice, weight: float) -> float:
            replica.zero_grad()
            _, loss = replica.forward(ids[rows], targets[rows])
            replica.backward(weight)
            return weight * float(loss)

        others = [self._pool.submit(run, *part) for part in parts[1:]]
        loss = run(*parts[0])  # worker 0 is this thread
        loss += sum(future.result() for future in others)
        if others:
            gradients = self.model.gradients()
            for replica in self.replicas[1:]:
                for name, grad in replica.gradients().items():
                    gradients[name] += grad
        return loss

    def _sync_replicas(self) -> None:
        """Each replica takes the model's train / eval modes, and its dropout a generator
        seeded, every step, from the model's own (drawn here, in order): a run stays
        reproducible and resumable to the bit, all its randomness coming from the model's
        generator, whose state a checkpoint saves."""
        for twins in self._twins:
            rng = None if self._dropout_rng is None else \
                np.random.default_rng(int(self._dropout_rng.integers(2**63)))
            for module, twin in twins:
                twin.training = module.training
                if rng is not None and isinstance(twin, Dropout):
                    twin.rng = rng

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> DataParallel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
