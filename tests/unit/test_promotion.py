"""The pure parts of registry management: hash shortening, the versions table, messages, card lines."""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.registry.promotion import AliasChange, VersionRow, short_hash, versions_table


def test_short_hash_keeps_the_kind_and_shortens_each_digest() -> None:
    assert short_hash("files-md5:0123456789abcdef") == "files-md5:0123456789"
    assert short_hash("02b6cfdf486795fe109da9d564fdc3cd.dir+aaaaaaaaaaaaaaaa") == "02b6cfdf48+aaaaaaaaaa"
    assert short_hash("unknown") == "unknown"
    assert short_hash(None) == short_hash("") == "-"


def test_versions_table_aligns_columns_and_marks_missing_values() -> None:
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [
        VersionRow("10", ("champion", "challenger"), {"accuracy": 0.91234}, "passed", None, created),
        VersionRow("9", (), {}, None, "abc", created),
    ]
    header, first, second = versions_table(rows).splitlines()
    assert first.split("  ")[0] == "10" and "champion, challenger" in first and "0.9123" in first
    assert second.split()[:6] == ["9", "-", "-", "-", "-", "abc"]
    assert header.index("accuracy") == first.index("0.9123") and first.endswith("2025-01-02 03:04:05")
    regressor = VersionRow("3", (), {"rmse": 0.2981, "mae": 0.2333, "accuracy": 0.5}, "passed", None, created)
    header, row = versions_table([regressor], ("rmse", "mae")).splitlines()
    assert header.split()[:4] == ["version", "aliases", "rmse", "mae"] and row.split()[2:4] == [
        "0.2981",
        "0.2333",
    ]


def test_messages_say_where_the_aliases_point() -> None:
    assert AliasChange("m", "2", "1", True).message() == (
        "m: 'champion' -> version 2; 'previous-champion' -> version 1"
    )
    assert "no 'previous-champion'" in AliasChange("m", "1", None, True).message()
    assert (
        AliasChange("m", "2", "1", False).message() == "m: version 2 is already 'champion'; nothing changed"
    )


def test_model_card_cites_the_licence_of_a_packaged_base_model() -> None:
    from tasks.registry.model_card import base_model_line

    smollm2 = base_model_line("smollm2-135m")
    assert "Apache-2.0" in smollm2 and "HuggingFaceTB" in smollm2 and "arXiv:2502.02737" in smollm2
    assert "dequantized to fp32" in smollm2
    assert "Apache-2.0" in base_model_line("minilm")
    assert base_model_line("/models/mine") == "- `/models/mine`: under its own licence (see its model card)"
