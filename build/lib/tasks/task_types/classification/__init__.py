"""`task: sequence_classification`: one text (a column), one label out of a fixed set."""
