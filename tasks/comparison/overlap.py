"""Whether the champion was trained on rows of this run's test split.

A champion scored on examples it learned looks better than it is, so such a comparison cannot
promote a challenger unless `gate.champion.allow_overlap` says so. What counts is the champion's
advantage: test rows it trained on that this run did not train on. Rows both trained on (a train
file that shares rows with the test file, accepted by `validate.allow_leakage`) favour neither
side; they are reported, and they do not block. Rows are compared by the hashes of their model
input (`splits/train_rows.txt`, logged with every run); a champion logged before those hashes
existed is checked by its recorded data hashes instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Overlap:
    """How many of this run's test rows the champion was trained on (None: could not be checked)."""

    rows: int | None  # test rows the champion trained on and this run did not
    test_rows: int
    method: str  # "row hashes", "data hashes" or why it could not be checked
    shared: int = 0  # test rows both the champion and this run trained on

    def describe(self, version: str) -> str:
        """One plain sentence for the gate's reasons and report."""
        if self.rows is None:
            return f"overlap: not checked ({self.method})"
        both = (
            f"; {self.shared} test rows were trained on by both (validate.allow_leakage), favouring neither"
            if self.shared
            else ""
        )
        if self.rows == 0:
            return (
                f"overlap: none of the {self.test_rows} test rows is among champion v{version}'s "
                f"training rows that this run did not train on ({self.method}){both}"
            )
        return (
            f"overlap: champion v{version} was trained on {self.rows} of the {self.test_rows} test rows "
            f"that this run did not train on ({self.method}): it is scored on examples it learned{both}"
        )


def by_rows(test_hashes: list[str], champion_rows: set[str], own_rows: set[str] | None = None) -> Overlap:
    """Test rows whose input hash is among the champion's training rows and not among this run's."""
    own = own_rows or set()
    learned = [h for h in test_hashes if h in champion_rows]
    advantage = sum(h not in own for h in learned)
    return Overlap(advantage, len(test_hashes), "row hashes", shared=len(learned) - advantage)


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
