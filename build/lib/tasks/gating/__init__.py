"""The gate: a pure decision from test metrics, thresholds and the champion comparison; its report."""
