"""Repairing what a killed run can leave of a stack on Pulumi's file backend.

The file backend (Pulumi's `diy` backend over gocloud's ``fileblob``) writes each file of a stack
(``.pulumi/stacks/<project>/<stack>.json``, its ``.bak``, history, backups, locks) to a temporary file
that is then renamed into place, so the file itself is whole or absent. Its *attributes* are not: the
sidecar ``<file>.attrs`` (content type and MD5, JSON) is truncated and rewritten in place just before the
rename. A run killed in that instant leaves an empty or torn ``.attrs`` beside a good file, and every
later command, `pulumi stack export` included, fails with ``failed to load checkpoint: EOF``. Without its
sidecar a file reads as it is (fileblob's documented default), so a torn sidecar is removed.

A checkpoint that is itself torn (a host that crashed before the rename reached the disk, a copy cut
short) is replaced by its ``.bak``, the checkpoint the backend saved just before it, when that one reads
whole; the caller then refreshes the state from the stores. With no good backup nothing is touched and
the error says where the older copies are.

Each repair is reported as one line. Nothing here decrypts anything: a checkpoint is only parsed to see
that it is whole. Decision: docs/decisions/0044-a-killed-run-stops-and-is-repaired.md.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ATTRS = ".attrs"
GZIP_MAGIC = b"\x1f\x8b"
"""How a gzip checkpoint begins (its `.bak` keeps the bytes, not the name)."""
CHECKPOINTS = (".json", ".json.gz")
"""The checkpoint encodings checked (plain and gzip); a zstd checkpoint is left as it is."""


@dataclass
class Repaired:
    """What :func:`repair` did."""

    lines: list[str] = field(default_factory=list)
    """One line per repair, naming the file (relative to the backend's directory)."""
    checkpoint_restored: bool = False
    """A checkpoint was restored from its backup: the state may lag the stores by one save."""


class TornStateError(Exception):
    """A torn checkpoint with no good backup; the message says where the older copies are."""


def _stack_files(pulumi: Path, stack: str) -> Iterator[Path]:
    """Every file the backend keeps for ``stack`` (under any organization and project)."""
    patterns = [f"stacks/**/{stack}.json*", f"history/**/{stack}/*", f"backups/**/{stack}/*", f"locks/**/{stack}/*"]
    for pattern in patterns:
        yield from (path for path in pulumi.glob(pattern) if path.is_file())


def _attrs_whole(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_bytes()), dict)
    except (OSError, ValueError):
        return False


def _checkpoint_whole(path: Path) -> bool:
    """Whether ``path`` holds a whole versioned checkpoint (``{"version": ..., "checkpoint": {...}}``)."""
    try:
        data = path.read_bytes()
        document = json.loads(gzip.decompress(data) if data[:2] == GZIP_MAGIC else data)
    except (OSError, ValueError, EOFError, zlib.error):
        return False
    return isinstance(document, dict) and isinstance(document.get("checkpoint"), dict)


def _replace(target: Path, content: bytes) -> None:
    """Write ``target`` whole or not at all (a temporary file beside it, renamed over it)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    with os.fdopen(handle, "wb") as file:
        file.write(content)
    os.replace(temporary, target)


def repair(root: Path, stack: str) -> Repaired:
    """Repair ``stack``'s files under the backend ``root``; a torn checkpoint without a whole backup is
    refused before anything is touched."""
    pulumi = root / ".pulumi"
    files = sorted(set(_stack_files(pulumi, stack)))
    own = {stack + ext for ext in CHECKPOINTS}  # history and backups are older copies, never restored
    torn = [p for p in files if p.is_relative_to(pulumi / "stacks") and p.name in own and not _checkpoint_whole(p)]
    for path in torn:
        backup = path.with_name(path.name + ".bak")
        if not _checkpoint_whole(backup):
            raise TornStateError(
                f"the checkpoint {path.relative_to(root)} of stack {stack} is torn and its backup {backup.name} is "
                f"{'torn too' if backup.exists() else 'missing'}: copy the newest whole checkpoint of "
                f"{pulumi.relative_to(root)}/backups or {pulumi.relative_to(root)}/history over it by hand"
            )
    done = Repaired(checkpoint_restored=bool(torn))
    for path in torn:
        _replace(path, path.with_name(path.name + ".bak").read_bytes())
        path.with_name(path.name + ATTRS).unlink(missing_ok=True)  # the sidecar of the torn content
        done.lines.append(
            f"restored {path.relative_to(root)} from {path.name}.bak: it was torn, its backup is the state saved "
            "just before"
        )
    for path in files:
        if path.name.endswith(ATTRS) and path.exists() and not _attrs_whole(path):
            size = path.stat().st_size
            path.unlink()
            done.lines.append(
                f"removed {path.relative_to(root)}: {'empty' if size == 0 else f'torn ({size} bytes)'}, left by a "
                f"killed write; the backend reads {path.name.removesuffix(ATTRS)} without it"
            )
    return done
