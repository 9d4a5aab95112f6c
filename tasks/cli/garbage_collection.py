"""`refinery gc`: keep the caches within `cache.budget_gb`, never dropping what a registered version used.

Tokenization entries, checkpoints and `trained/` copies beyond the budget go, least recently used
first. The entries a registered version trained from (its `tokenized_key` and `checkpoint_key`
lineage tags, in the registry `--tracking-uri`, `MLFLOW_TRACKING_URI` or `register.tracking_uri`
names) are kept whatever the budget: the version's training can be resumed and its data re-read as
it was. `--dry-run` lists what would go and removes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tasks.cli.model_commands import _add, _store_options
from tasks.core.config import load_params
from tasks.core.errors import RefineryError

CACHE_TAGS = ("tokenized_key", "checkpoint_key")


def _require_reachable(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """A tracking server that does not answer fails at once, not after MLflow's minutes of retries."""
    from urllib.error import HTTPError, URLError
    from urllib.request import urlopen

    from tasks.registry.tracking import redacted

    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        with urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s):
            return
    except HTTPError:
        return  # it answered (an auth-only server may refuse /health): the registry read decides
    except (URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise RefineryError(
            f"gc: the tracking server {redacted(tracking_uri)} does not answer ({reason}); "
            "nothing removed (start it, or pass --tracking-uri)"
        ) from None


def protected_keys(tracking_uri: str) -> tuple[set[str], int]:
    """The cache keys registered versions name, and how many versions name none (older ones)."""
    from tasks.registry.tracking import redacted, store_exists, tracking_to

    if not store_exists(tracking_uri):
        return set(), 0
    _require_reachable(tracking_uri)
    keys: set[str] = set()
    unknown = 0
    try:
        with tracking_to(tracking_uri) as client:
            versions = client.search_model_versions(max_results=100_000)
    except Exception as err:  # a server away: without the registry nothing is known to be safe
        cause = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise RefineryError(
            f"gc: cannot read the registered versions in {redacted(tracking_uri)} ({cause}); "
            "nothing removed (pass --tracking-uri, or start the server)"
        ) from None
    for version in versions:
        named = {version.tags.get(tag, "none") for tag in CACHE_TAGS} - {"none"}
        keys |= named
        unknown += not named
    return keys, unknown


def _gc(args: argparse.Namespace) -> int:
    from tasks.registry.tracking import effective_tracking_uri, redacted
    from tasks.training.cache_entries import cache_entries, over_budget, remove_entry

    params = load_params(args.params)
    budget_gb = args.budget if args.budget is not None else params.cache.budget_gb
    tokenized_dir = Path(args.tokenized_dir or params.tokenize.cache_dir)
    checkpoint_dir = Path(args.checkpoint_dir or params.train.checkpoint_dir)
    uri = effective_tracking_uri(params.register_, args.tracking_uri)
    protected, unknown = protected_keys(uri)
    if unknown:
        print(
            f"warning: {unknown} registered version(s) in {redacted(uri)} name no cache entries "
            "(registered before cache keys were recorded): nothing of theirs can be told apart",
            file=sys.stderr,
        )
    entries = cache_entries(tokenized_dir, checkpoint_dir)
    chosen = over_budget(entries, int(budget_gb * 1e9), protected)
    verb = "would remove" if args.dry_run else "removed"
    freed = 0
    for entry in chosen:
        if not args.dry_run and not remove_entry(entry):
            print(f"kept {entry.describe()}: a training holds it now")
            continue
        freed += entry.size_bytes
        print(f"{verb} {entry.describe()}")
    total = sum(entry.size_bytes for entry in entries)
    kept = sum(entry.key in protected for entry in entries)
    print(f"caches: {total / 1e9:.3f} GB in {len(entries)} entries, budget {budget_gb:g} GB; {verb} "
          f"{freed / 1e9:.3f} GB; {kept} entries kept for registered versions")  # fmt: skip
    return 0


def _budget(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a size in GB >= 0, got {text}")
    return value


def add_gc_command(commands: Any) -> None:
    """Add gc to the subparsers `commands` of `refinery`."""
    gc = _add(
        commands,
        "gc",
        _gc,
        "remove cache entries beyond cache.budget_gb, least recently used first",
        "Remove tokenization cache entries, checkpoints and trained/ copies beyond the budget "
        "(cache.budget_gb of --params, or --budget), least recently used first. Entries a registered "
        "version of the tracking store trained from are never removed. --params also gives the "
        "cache folders (tokenize.cache_dir, train.checkpoint_dir).",
    )
    gc.add_argument("--budget", type=_budget, default=None, metavar="GB", help="overrides cache.budget_gb")
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    gc.add_argument("--tokenized-dir", default=None, metavar="DIR", help="default: tokenize.cache_dir")
    gc.add_argument("--checkpoint-dir", default=None, metavar="DIR", help="default: train.checkpoint_dir")
    _store_options(gc)
