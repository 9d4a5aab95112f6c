"""`task: causal_lm`: supervised fine-tuning of a causal LM on instruction or chat records."""
