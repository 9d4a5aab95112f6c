"""`token_classification`: a tag per word of a sentence (named entities), scored by entity."""
