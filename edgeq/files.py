"""Atomic file writes: a reader sees a file absent, as it was, or whole; never half-written."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary name beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write each of `files` (relative path -> bytes) under `out_dir`, each one atomically."""
    for rel, data in files.items():
        write_atomic(out_dir / rel, data)


def write_tree(folder: Path, files: dict[str, bytes]) -> None:
    """Make `folder` hold exactly `files`: written into a temporary folder beside it, then renamed into
    place, so a reader sees the old folder or the new one, never a mix."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    old = folder.with_name(f".{folder.name}.old")
    try:
        write_files(tmp, files)
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
