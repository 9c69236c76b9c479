"""Phase 8: train GPT-2 Small (124M) — token shards, a fast single-GPU path, DDP with torchrun,
Apple MPS, and the CPU proofs that the distributed code is right."""
