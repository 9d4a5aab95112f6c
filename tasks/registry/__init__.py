"""MLflow: the tracking store, the run record, registered versions, aliases and promotion."""
