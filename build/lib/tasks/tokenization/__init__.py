"""The content-keyed on-disk cache of tokenized splits that every task type's tokenization goes through."""
