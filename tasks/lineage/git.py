"""Asking git about a checkout: one way to run it, for lineage and reproduction alike."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`git -C repo_dir args...`, captured; a missing git binary reads as a failed command."""
    try:
        return subprocess.run(
            ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as err:
        return subprocess.CompletedProcess(["git", *args], 127, "", str(err))


def git_output(repo_dir: Path, *args: str) -> str | None:
    """The stripped output of a successful git command, else None (no git, not a repository, ...)."""
    done = git(repo_dir, *args)
    return done.stdout.strip() if done.returncode == 0 else None
