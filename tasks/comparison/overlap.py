"""Whether the champion was trained on rows of this run's test split.

A champion scored on examples it learned looks better than it is, so such a comparison cannot
promote a challenger unless `gate.champion.allow_overlap` says so. Rows are compared by the
hashes of their model input (`splits/train_rows.txt`, logged with every run); a champion logged
before those hashes existed is checked by its recorded data hashes instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Overlap:
    """How many of this run's test rows the champion was trained on (None: could not be checked)."""

    rows: int | None
    test_rows: int
    method: str  # "row hashes", "data hashes" or why it could not be checked

    def describe(self, version: str) -> str:
        """One plain sentence for the gate's reasons and report."""
        if self.rows is None:
            return f"overlap: not checked ({self.method})"
        if self.rows == 0:
            return (
                f"overlap: none of the {self.test_rows} test rows is among champion v{version}'s "
                f"training rows ({self.method})"
            )
        return (
            f"overlap: champion v{version} was trained on {self.rows} of the {self.test_rows} test rows "
            f"({self.method}): it is scored on examples it learned"
        )


def by_rows(test_hashes: list[str], champion_rows: set[str]) -> Overlap:
    """Test rows whose input hash is among the champion's training rows."""
    return Overlap(sum(h in champion_rows for h in test_hashes), len(test_hashes), "row hashes")


def by_data_hashes(test_rows: int, test_file_hash: str, champion_tags: dict[str, str]) -> Overlap:
    """Without row hashes: the champion's train file is this run's test file (every row), or unknown."""
    trained_on = champion_tags.get("data_hash_train")
    if not trained_on or trained_on == "none":
        return Overlap(None, test_rows, "the champion recorded neither row nor data-file hashes")
    if trained_on == test_file_hash:
        return Overlap(test_rows, test_rows, "data hashes: its train file is this run's test file")
    return Overlap(
        None, test_rows, "the champion has no row hashes; its train file differs from the test file"
    )
