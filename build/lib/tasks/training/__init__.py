"""What every task type's training shares: Trainer arguments, precision, checkpoints, resume and reuse."""
