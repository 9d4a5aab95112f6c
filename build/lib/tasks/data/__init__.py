"""Reading the user's files (CSV/TSV/JSONL/JSON/Parquet) and splitting examples into train/validation/test."""
