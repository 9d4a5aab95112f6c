"""The pipeline steps, one module each: validation, tokenization, training, evaluation, comparison,
gating and registration. Each step does the shared work and asks the run's task type for the rest;
`python -m tasks.steps.<step>` is its DVC stage command."""
