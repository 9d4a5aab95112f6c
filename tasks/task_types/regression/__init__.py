"""`task: regression`: one text (or a pair of texts) in, a number out."""
