"""Tag schemes (IOB2, IOE2, IOBES, BILOU): a tag's form, where a sequence breaks its scheme, and the
entities of tag sequences, by seqeval's rules (strict: only well-formed entities count; default:
conlleval's lenient reading). Pure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Entity = tuple[str, int, int]  # (type, first token, last token + 1)
PREFIXES = {"IOB2": "BI", "IOE2": "IE", "IOBES": "BIES", "BILOU": "BILU"}  # besides "O"


def tag_problem(tag: str, scheme: str) -> str | None:
    """Why `tag` is not `O` or `P-TYPE` with a prefix P of `scheme`; None when it is."""
    if tag == "O":
        return None
    prefix, dash, kind = tag.partition("-")
    if dash and prefix in PREFIXES[scheme] and len(prefix) == 1 and kind:
        return None
    return f"{tag!r} is not O or {'/'.join(PREFIXES[scheme])}-TYPE"


def entity_sets(sequences: Sequence[Sequence[str]], mode: str, scheme: str) -> list[set[Entity]]:
    """The entities of each tag sequence: `strict` keeps those well-formed in `scheme`; `default`
    reads them as conlleval does (an I- after O opens one)."""
    from seqeval import scheme as schemes
    from seqeval.metrics.sequence_labeling import get_entities

    lists = [list(tags) for tags in sequences]
    if mode == "strict":
        found = schemes.Entities(lists, getattr(schemes, scheme)).entities
        return [{(e.tag, e.start, e.end) for e in sentence} for sentence in found]
    # one call per sentence: seqeval joins a list of sequences into one
    return [{(kind, start, end + 1) for kind, start, end in get_entities(tags)} for tags in lists]


def scheme_break(tags: Sequence[str], scheme: str) -> int | None:
    """The first non-O tag that belongs to no well-formed entity of `scheme` (an I-X after O under
    IOB2, a B-X without its E-X under IOBES); None when the sequence is valid."""
    covered = {i for _, start, end in entity_sets([tags], "strict", scheme)[0] for i in range(start, end)}
    return next((i for i, tag in enumerate(tags) if tag != "O" and i not in covered), None)


def sentence_counts(
    references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]], mode: str, scheme: str
) -> np.ndarray:
    """Per sentence: entities found exactly (TP), predicted but wrong (FP) and missed (FN), as an
    (n, 3) integer array; their column sums are seqeval's micro counts."""
    truth, found = entity_sets(references, mode, scheme), entity_sets(predictions, mode, scheme)
    return count_matches(truth, found)


def count_matches(truth: Sequence[set[Entity]], found: Sequence[set[Entity]]) -> np.ndarray:
    """(TP, FP, FN) of each sentence's predicted entities against its true ones."""
    rows = [(len(t & f), len(f - t), len(t - f)) for t, f in zip(truth, found, strict=True)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def micro_f1(counts: np.ndarray) -> float:
    """Entity F1 from summed (TP, FP, FN): 2TP / (2TP + FP + FN), 0 when there is nothing to find
    or predict (seqeval's zero_division=0)."""
    tp, fp, fn = (float(v) for v in np.asarray(counts).reshape(-1, 3).sum(axis=0))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


_WRITTEN = {"IOB2": "BBII", "IOE2": "EIIE", "IOBES": "SBIE", "BILOU": "UBIL"}  # single, first, inner, last


def spans_as_tags(spans: Sequence[Entity], length: int, scheme: str) -> list[str]:
    """A tag sequence of `length` words that is well-formed in `scheme` and holds exactly `spans`."""
    single, first, inner, last = tuple(_WRITTEN[scheme])
    tags = ["O"] * length
    for kind, start, end in spans:
        if end - start == 1:
            tags[start] = f"{single}-{kind}"
            continue
        tags[start:end] = [f"{first}-{kind}"] + [f"{inner}-{kind}"] * (end - start - 2) + [f"{last}-{kind}"]
    return tags
