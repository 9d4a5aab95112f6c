"""Where a model came from: git state, data and params hashes, validation, tokenizer and base model."""
