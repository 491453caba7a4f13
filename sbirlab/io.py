"""Files sbirlab writes, written so that a crash or a Ctrl-C never leaves half a file behind.

Every writer goes through :func:`atomic_write`: the bytes go to a temporary file in the target's folder
(unique per process, so concurrent writers never collide), are flushed and fsynced, then
``os.replace`` puts them in place in one step; on any exception (``KeyboardInterrupt`` included) the
temporary file is removed and the old file, if any, is untouched.

Under ``torch.distributed`` the writers called with ``main_only=True`` write on rank 0 only (the other
ranks return at once), which is what the training loop's checkpoints and logs need.

This module sits at the bottom of the package: it imports nothing of sbirlab but the version.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "atomic_savez", "atomic_copy",
           "is_main_process", "versions"]


def is_main_process() -> bool:
    """True outside ``torch.distributed`` and on rank 0 inside it."""
    try:
        import torch.distributed as dist
    except ImportError:  # the data layer works without torch
        return True
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any], main_only: bool = False) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a binary temporary file that then replaces ``path``.

    The parent folder is created. With ``main_only`` only rank 0 of a process group writes.
    Returns ``path``.
    """
    path = Path(path)
    if main_only and not is_main_process():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, main_only: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), main_only=main_only)


def atomic_write_json(obj: Any, path: str | Path, indent: int | None = 2, main_only: bool = False) -> Path:
    """Write ``obj`` as JSON (non-JSON values through ``str``) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=str), main_only=main_only)


def atomic_torch_save(obj: Any, path: str | Path, main_only: bool = False) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (checkpoints survive a crash mid-write)."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), main_only=main_only)


def atomic_copy(src: str | Path, dst: str | Path, main_only: bool = False) -> Path:
    """Copy the file ``src`` to ``dst`` atomically."""
    import shutil

    def write(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f)
    return atomic_write(dst, write, main_only=main_only)


def atomic_savez(path: str | Path, **arrays) -> Path:
    """``numpy.savez`` of ``arrays`` to ``path`` atomically."""
    import numpy as np

    return atomic_write(path, lambda f: np.savez(f, **arrays))


def versions() -> dict:
    """The versions a result depends on: sbirlab, torch, open_clip, Python (missing ones are left out)."""
    import sbirlab

    out = {"sbirlab": sbirlab.__version__}
    try:
        import torch
        out["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        import open_clip
        out["open_clip"] = open_clip.__version__
    except ImportError:
        pass
    out["python"] = platform.python_version()
    return out
