"""The served token classifier's decoding of predicted tags into entity spans (pure)."""

from __future__ import annotations

import pytest

from tasks.models.served_encoder import entity_spans


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),  # IOB2
        (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),  # B opens a new entity
        (["I-ORG", "I-ORG", "O"], [("ORG", 0, 2)]),  # a stray I- still marks its words (lenient)
        (["B-ORG", "I-LOC"], [("ORG", 0, 1), ("LOC", 1, 2)]),  # a change of type closes the entity
        (["S-MONEY", "B-PER", "E-PER", "O"], [("MONEY", 0, 1), ("PER", 1, 3)]),  # IOBES
        (["U-X", "B-Y", "L-Y"], [("X", 0, 1), ("Y", 1, 3)]),  # BILOU
        (["O", "O"], []),
    ],
)
def test_entity_spans(tags: list[str], spans: list[tuple[str, int, int]]) -> None:
    assert entity_spans(tags) == spans
