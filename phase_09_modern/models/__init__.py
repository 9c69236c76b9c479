"""Phase 9's PyTorch models and what trains them: the LLaMA / Mistral model and its KV-cache
benchmark, LLaMA trained by phase 7's trainer, LoRA fine-tuning, DPO preference training, and
the spiking GPT."""
