"""Base models: resolving `train.base_model` offline, tokenizers, weight fingerprints and LoRA."""
