"""`task: preference`: preference tuning (DPO, with TRL) of a causal LM on chosen/rejected pairs."""
