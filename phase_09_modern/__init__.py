"""Phase 9: from GPT-2 to LLaMA and Mistral.

- ``ops/``: the new pieces as NumPy forward/backward pairs (RoPE, RMSNorm, SwiGLU, grouped-query
  and sliding-window attention, ALiBi, FlashAttention's tiling, mixture of experts, DPO, Muon,
  the spiking neuron), each gradient-checked and matched against torch;
- ``models/``: PyTorch models built from them (LLaMA / Mistral with a KV cache, LoRA, DPO
  training, the spiking GPT);
- ``research/``: the research track's experiments and their runner.
"""
