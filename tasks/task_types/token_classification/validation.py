"""The data contract of token classification: a Great Expectations suite on columns derived from
each sentence (a problem found in it, or null), so every failure names file, line and value.

Per file: the fields are lists of words (tokens without blanks, as many tags as tokens), the tags
are of the scheme's form and (mode strict) make well-formed entities, the tags are known
(`data.labels_path`, or for test the train tags), texts are not too long or duplicated. Across
files: every entity type has enough train examples, no test sentence is a train sentence.
A CoNLL problem is shown at the offending token's line, a JSONL/Parquet one at its record.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import great_expectations.expectations as gxe
import pandas as pd

from tasks.core.config import Params, ValidateConfig
from tasks.core.sections import TokenClassificationConfig
from tasks.task_types.token_classification.records import as_words, field_frames, is_conll, tag_names
from tasks.task_types.token_classification.schemes import entity_sets, scheme_break, tag_problem
from tasks.validation.report import ValidationResult
from tasks.validation.suite import (
    ROW,
    STRIPPED,
    Batch,
    Check,
    cross_checks,
    duplicates_limit,
    file_batch,
    min_examples_limit,
    result_of,
    run_suite,
)

_TYPES_BATCH = "train_entity_types"


def _word_problem(value: Any, what: str) -> str | None:
    """Why a field's value is not a non-empty list of strings without blanks; None when it is."""
    words = as_words(value)
    if words is None:
        return "missing" if value is None else f"{type(value).__name__}, not a list"
    if not words:
        return f"no {what}s"
    for i, word in enumerate(words, start=1):
        if not isinstance(word, str):
            return f"{what} {i} is {type(word).__name__}, not text"
        if not word or len(word.split()) != 1:
            return f"{what} {i} {word!r} is blank or holds a blank"
    return None


def read_fields(frame: pd.DataFrame, cfg: TokenClassificationConfig) -> pd.DataFrame:
    """Per sentence: its row, tokens and tags (lists, or None), and the problem of each field."""
    rows = []
    for row, tokens, tags in zip(frame[ROW], frame.get(cfg.tokens_field, [None] * len(frame)),
                                 frame.get(cfg.tags_field, [None] * len(frame)), strict=True):  # fmt: skip
        token_problem, tag_problem_ = _word_problem(tokens, "token"), _word_problem(tags, "tag")
        words, labels = as_words(tokens), as_words(tags)
        if token_problem is None and tag_problem_ is None and len(words or []) != len(labels or []):
            tag_problem_ = f"{len(labels or [])} tags for {len(words or [])} tokens"
        ok = token_problem is None and tag_problem_ is None
        rows.append((int(row), words if ok else None, labels if ok else None, token_problem, tag_problem_))
    return pd.DataFrame(rows, columns=[ROW, "tokens", "tags", "token_problem", "tag_problem"])


def _first(tags: list[str], bad: Any) -> int | None:
    return next((i for i, tag in enumerate(tags) if bad(tag)), None)


def _tag_rows(fields: pd.DataFrame, column: str, step: int, find: Any) -> pd.DataFrame:
    """A derived frame: per well-formed sentence, the line (CoNLL: `step` 1) or row of the first tag
    `find(tags)` points at and what is wrong with it, or null."""
    rows, problems = [], []
    for row, tags in zip(fields[ROW], fields["tags"], strict=True):
        found = find(tags) if tags is not None else None
        rows.append(row + step * (found[0] if found else 0))
        problems.append(f"{found[1]} (token {found[0] + 1})" if found else None)
    return pd.DataFrame({ROW: rows, column: pd.Series(problems, dtype=object)})


def _scheme_finder(cfg: TokenClassificationConfig) -> Any:
    """The first tag not of the scheme's form or (strict) breaking its entities, and why."""

    def find(tags: list[str]) -> tuple[int, str] | None:
        bad = _first(tags, lambda tag: tag_problem(tag, cfg.scheme) is not None)
        if bad is not None:
            return bad, str(tag_problem(tags[bad], cfg.scheme))
        broken = scheme_break(tags, cfg.scheme) if cfg.mode == "strict" else None
        if broken is None:
            return None
        before = repr(tags[broken - 1]) if broken else "the start"
        return broken, f"{tags[broken]!r} after {before}"

    return find


def _known_finder(known: set[str]) -> Any:
    def find(tags: list[str]) -> tuple[int, str] | None:
        bad = _first(tags, lambda tag: tag not in known)
        return None if bad is None else (bad, repr(tags[bad]))

    return find


def _type_counts(fields: pd.DataFrame, cfg: TokenClassificationConfig) -> pd.DataFrame:
    """Entities per type in the well-formed sentences whose tags have the scheme's form."""
    sequences = [
        tags for tags in fields["tags"].dropna() if all(tag_problem(t, cfg.scheme) is None for t in tags)
    ]
    counts = Counter(kind for found in entity_sets(sequences, "default", cfg.scheme) for kind, _, _ in found)
    return pd.DataFrame({"class": pd.Series(list(counts), dtype=object),
                         "examples": pd.Series(list(counts.values()), dtype="int64")})  # fmt: skip


def validate_sentences(frames: dict[str, pd.DataFrame], params: Params) -> ValidationResult:
    """Run the suite on `frames` ("train", optional "test"); never raises for bad data."""
    data, cfg, limits = params.data, params.token_classification, params.validate_
    frames = field_frames(frames, data, cfg)
    fields = {key: read_fields(frame, cfg) for key, frame in frames.items()}
    labels_path = Path(data.labels_path) if data.labels_path else None
    train_tags = [tags for tags in fields["train"]["tags"] if tags is not None]
    known = set(tag_names(train_tags, labels_path))
    batches: dict[str, Batch] = {}
    checks: list[Check] = []
    for key, frame in frames.items():
        file = str(frame["source_file"].iloc[0])
        found, more = _file_checks(key, file, frame, fields[key], cfg, limits, known, labels_path is not None,
                                   1 if is_conll(frame, data) else 0)  # fmt: skip
        batches.update(found)
        checks += more
    texts = {key: batches[key] for key in frames}
    across, derived = cross_checks(texts, "text", "label", limits)  # no `label`: leakage only
    counts = _type_counts(fields["train"], cfg)
    derived[_TYPES_BATCH] = Batch(frame=counts, file=texts["train"].file, index_columns=["class"])
    checks += _type_checks(texts["train"].file, cfg, limits) + across
    statistics: dict[str, int | float] = {"tags": len(known), "entity_types_train": len(counts)}
    for key, table in fields.items():
        statistics[f"rows_{key}"] = len(table)
        statistics[f"tokens_{key}"] = int(sum(len(t) for t in table["tokens"].dropna()))
    return result_of(run_suite({**batches, **derived}, checks), statistics)


def _file_checks(
    key: str,
    file: str,
    frame: pd.DataFrame,
    fields: pd.DataFrame,
    cfg: TokenClassificationConfig,
    limits: ValidateConfig,
    known: set[str],
    listed: bool,
    step: int,
) -> tuple[dict[str, Batch], list[Check]]:
    """The batches of one file and their expectations."""
    tokens, tags = cfg.tokens_field, cfg.tags_field
    present = [column for column in (tokens, tags) if column in frame.columns]
    shape = fields[[ROW]].assign(**{tokens: fields["token_problem"], tags: fields["tag_problem"]})[
        [ROW, *present]
    ]
    scheme = _tag_rows(fields, tags, step, _scheme_finder(cfg))
    unknown = _tag_rows(fields, tags, step, _known_finder(known))
    ok = fields["tokens"].notna()
    text = pd.DataFrame({"source_file": file, ROW: fields.loc[ok, ROW],
                         "text": [" ".join(words) for words in fields.loc[ok, "tokens"]]})  # fmt: skip
    batches = {
        f"{key}_fields": Batch(shape, file, [ROW, *present]),
        f"{key}_scheme": Batch(scheme, file, [ROW, tags]),
        f"{key}_known": Batch(unknown, file, [ROW, tags]),
        key: file_batch(key, text, "text", "label"),
    }
    mode = "well-formed entities of" if cfg.mode == "strict" else "tags of the form of"
    source = "data.labels_path" if listed or key == "train" else "the train tags"

    def on(name: str, part: str, column: str, expectation: gxe.Expectation, why: str) -> Check:
        return Check(name, expectation, f"{key}{part}", file, column, why)

    checks = [
        # nothing can be trained without both fields
        on("tokens_field_present", "_fields", tokens, gxe.ExpectColumnToExist(column=tokens),
           f"the field '{tokens}' (token_classification.tokens_field) must exist"),
        on("tags_field_present", "_fields", tags, gxe.ExpectColumnToExist(column=tags),
           f"the field '{tags}' (token_classification.tags_field) must exist"),
        # a sentence is a list of words: a string would be split into characters, a blank inside a
        # token would be lost when the served model splits the text on whitespace
        on("tokens_are_words", "_fields", tokens, gxe.ExpectColumnValuesToBeNull(column=tokens),
           "tokens must be a non-empty list of texts without blanks"),
        # one tag per token, or the labels shift against the words
        on("tags_match_tokens", "_fields", tags, gxe.ExpectColumnValuesToBeNull(column=tags),
           "tags must be a list of texts, one per token"),
        # an I-X after O is an entity without a beginning: strict scoring would drop it
        on("tags_follow_scheme", "_scheme", tags, gxe.ExpectColumnValuesToBeNull(column=tags),
           f"tags must be {mode} {cfg.scheme} (token_classification.scheme, .mode)"),
        # typos in tags silently create new classes; test tags the model never saw cannot be predicted
        on("tags_in_known_set", "_known", tags, gxe.ExpectColumnValuesToBeNull(column=tags),
           f"tags must be among those of {source}"),
        # runaway rows: usually a broken file that ran sentences together
        on("text_not_too_long", "", "text",
           gxe.ExpectColumnValueLengthsToBeBetween(column="text", max_value=limits.max_text_length),
           f"a sentence must have at most {limits.max_text_length} characters (validate.max_text_length)"),
    ]  # fmt: skip
    # duplicates overweight some sentences (compared stripped, as in every task type)
    unique = gxe.ExpectColumnValuesToBeUnique(column=STRIPPED, mostly=1.0 - limits.max_duplicate_fraction)
    share = limits.max_duplicate_fraction
    why = f"at most {share:g} of sentences may repeat another (validate.max_duplicate_fraction)"
    checks.append(
        Check("no_duplicate_texts", unique, key, file, "text", why, duplicates_limit(limits, "sentences"))
    )
    return batches, checks if len(present) == 2 else checks[:2]  # a field missing: nothing else to check


def _type_checks(file: str, cfg: TokenClassificationConfig, limits: ValidateConfig) -> list[Check]:
    """Expectations on the train entity types."""
    enough = gxe.ExpectColumnValuesToBeBetween(column="examples", min_value=limits.min_examples_per_class)
    return [
        # only O tags: the model would learn to find nothing
        Check("train_has_entities", gxe.ExpectTableRowCountToBeBetween(min_value=1), _TYPES_BATCH, file,
              cfg.tags_field, "train needs at least one entity"),
        # rare types: too few examples to learn, or to appear in every split
        Check("entity_types_have_min_examples", enough, _TYPES_BATCH, file, cfg.tags_field,
              f"every entity type needs at least {limits.min_examples_per_class} entities in train "
              "(validate.min_examples_per_class)", min_examples_limit(limits)),
    ]  # fmt: skip
