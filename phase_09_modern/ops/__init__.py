"""Phase 9's NumPy forward/backward pairs, one module per idea: RoPE, RMSNorm and QK-norm,
SwiGLU, grouped-query attention, sliding-window attention, ALiBi, FlashAttention's tiles, mixture
of experts, the DPO loss, the Muon update and the leaky integrate-and-fire neuron. Each is
gradient-checked in float64 (``phase_09_modern/tests``) and matched against torch
(``parity.py``)."""
