"""Phase 9: from GPT-2 to LLaMA and Mistral — RoPE, RMSNorm, SwiGLU, grouped-query attention,
KV caches, sliding windows, FlashAttention's tiling, ALiBi, LoRA, DPO, mixture of experts, Muon."""
