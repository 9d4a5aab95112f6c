"""Starting and stopping long-running services as process groups, and knowing which are ours.

A service is started as the leader of a new session (so of a new process group); its pid file
records the pid and the kernel's start time of that process, which tells our leader from a later
process that reuses the pid. Every process started carries an owner variable in its environment,
inherited by its children: a process is ours when it is in a group whose leader we verified, or
when it carries our owner value. Nothing else is ever signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class _Stat:
    state: str
    pgrp: int
    start_ticks: int


def _stat(pid: int) -> _Stat | None:
    """State, process group and start time (clock ticks after boot) from /proc/<pid>/stat."""
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return _Stat(state=fields[0], pgrp=int(fields[2]), start_ticks=int(fields[19]))


def _alive(stat: _Stat | None) -> bool:
    return stat is not None and stat.state not in ("Z", "X")  # a zombie has exited already


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file holds about one started service."""

    pid: int  # also its process group id: the service leads its own group
    start_ticks: int | None
    started_at: float  # seconds since the epoch
    command: list[str]

    @classmethod
    def load(cls, path: Path) -> ProcessRecord | None:
        """The record in `path`, or None when there is none (or it is not one)."""
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)) + "\n", encoding="utf-8")

    def leader_alive(self) -> bool:
        """Whether the process we started still runs (not merely a process with the same pid)."""
        if not PROC.is_dir():  # no procfs: trust the pid
            try:
                os.kill(self.pid, 0)
            except OSError:
                return False
            return True
        stat = _stat(self.pid)
        return _alive(stat) and stat is not None and stat.start_ticks == self.start_ticks


def start_group(
    command: list[str], env: Mapping[str, str], cwd: Path, log: Path, pid_file: Path
) -> ProcessRecord:
    """Start `command` as the leader of a new session, output appended to `log`; record it."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stat = _stat(process.pid)
    record = ProcessRecord(
        pid=process.pid,
        start_ticks=stat.start_ticks if stat else None,
        started_at=time.time(),
        command=command,
    )
    record.save(pid_file)
    return record


def _tagged(pid: int, key: str, owner: str) -> bool:
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return f"{key}={owner}".encode() in environ.split(b"\0")


def owned_processes(key: str, owner: str, groups: frozenset[int] = frozenset()) -> list[int]:
    """Live processes in `groups` or carrying `key=owner` in their environment (never this one)."""
    if not PROC.is_dir():
        return [pid for pid in groups if _group_exists(pid)]
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if _alive(stat) and stat is not None and (stat.pgrp in groups or _tagged(pid, key, owner)):
            found.append(pid)
    return found


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True


def _signal(pids: list[int], groups: frozenset[int], sig: signal.Signals) -> None:
    for pgid in groups:
        with contextlib.suppress(OSError):  # gone already
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def stop_groups(records: list[ProcessRecord], key: str, owner: str, grace_s: float = 30.0) -> list[int]:
    """SIGTERM the groups of `records` and every process carrying `key=owner`; SIGKILL stragglers.

    Returns the pids that had to be killed (empty when everything stopped within `grace_s`).
    """
    # verified once, before any signal: a group outlives its leader and keeps its id reserved
    groups = frozenset(r.pid for r in records if r.leader_alive())
    remaining = owned_processes(key, owner, groups)
    _signal(remaining, groups, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while remaining and time.monotonic() < deadline:
        time.sleep(0.2)
        remaining = owned_processes(key, owner, groups)
    if remaining:
        _signal(remaining, groups, signal.SIGKILL)
        time.sleep(0.5)
    return remaining


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts connections on `host:port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def stop_leader(record: ProcessRecord, sig: signal.Signals, grace_s: float = 60.0) -> bool:
    """Send `sig` to the leader alone (when that is not SIGTERM) and wait for it to exit.

    For a server that shuts its own children down in order on a signal of its choice (PostgreSQL on
    SIGINT); `stop_groups` then finds nothing or only stragglers. Returns whether the leader exited.
    """
    if sig == signal.SIGTERM or not record.leader_alive():
        return not record.leader_alive()
    with contextlib.suppress(OSError):
        os.kill(record.pid, sig)
    deadline = time.monotonic() + grace_s
    while record.leader_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not record.leader_alive()
