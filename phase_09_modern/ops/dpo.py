"""Direct preference optimisation (Rafailov et al. 2023).

RLHF fits a reward model to human preferences, then optimises a policy against it under a KL
penalty to a reference model. DPO notices that the optimum of that problem has a closed form,
r(x, y) = beta log(pi(y|x) / pi_ref(y|x)) + a term that depends on x alone, and substitutes it
into the Bradley-Terry likelihood of the preferences: the policy is trained directly, with a
logistic loss on the difference of the two implicit rewards.
Derivation: ``phase_09_modern/notes/09_dpo_and_muon.md``.
"""

from __future__ import annotations

import numpy as np

from phase_01_nn.activations import sigmoid


def dpo_loss_forward(policy_chosen: np.ndarray, policy_rejected: np.ndarray,
                     reference_chosen: np.ndarray, reference_rejected: np.ndarray, *,
                     beta: float = 0.1):
    """Sequence log-probabilities, each (B,) -> loss: ().

    z = beta [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))];
    loss = mean(-log sigmoid(z)) = mean(log(1 + e^-z)).
    """
    arrays = (policy_chosen, policy_rejected, reference_chosen, reference_rejected)
    if any(a.ndim != 1 or a.shape != policy_chosen.shape for a in arrays):
        raise ValueError(f"dpo: the four log-probabilities must be (B,) arrays of one shape, got "
                         f"{[a.shape for a in arrays]}")
    dtype = policy_chosen.dtype
    beta = dtype.type(beta)
    z = beta * ((policy_chosen - reference_chosen) - (policy_rejected - reference_rejected))
    loss = np.mean(np.logaddexp(dtype.type(0), -z))
    return np.asarray(loss, dtype=dtype), (z, beta)


def dpo_loss_backward(dloss, cache):
    """-> (d policy_chosen, d policy_rejected, d reference_chosen, d reference_rejected).
    dz = -dloss sigmoid(-z) / B; the four are beta dz, -beta dz, -beta dz, beta dz."""
    z, beta = cache
    dz = -dloss * sigmoid(-z) / z.shape[0]
    return beta * dz, -beta * dz, -beta * dz, beta * dz


def dpo_implicit_rewards(policy: np.ndarray, reference: np.ndarray, *,
                         beta: float = 0.1) -> np.ndarray:
    """beta log(pi(y) / pi_ref(y)): the reward the policy implies, up to a per-prompt term."""
    return beta * (policy - reference)
