"""`multi_label_classification`: texts carrying any number of labels of a fixed set (tags, topics)."""
