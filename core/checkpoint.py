"""Per-chunk results of a long computation on disk, so that a killed run resumes where it stopped.

A study that splits its lanes into chunks (the basin map) keeps a :class:`ChunkStore` beside its
output file: ``<output>.partial/`` holds ``config.json`` (the computation's configuration, which a
resumed run must match) and one ``chunk-<i>.json`` per finished chunk, each written atomically
(temporary file, fsync, rename), so a kill leaves only whole chunks. A resumed run reads the chunks
that exist and computes the others; the study writes its output (atomically) from all chunks and
removes the folder. Chunking must not depend on whether the run resumes, and a chunk's result
must not depend on the others (the engines' lanes are batch invariant), so that a resumed result
is byte for byte the uninterrupted one.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

from core.errors import ConfigError
from core.output import atomic_write_text, dumps_json


class ChunkStore:
    """Chunk results of one computation (``config``: any JSON-able description of it)."""

    def __init__(self, output: str, config: dict[str, Any], *, resume: bool = False):
        self.dir = output + ".partial"
        self.config = json.loads(dumps_json(config))
        cfg_path = os.path.join(self.dir, "config.json")
        if resume and os.path.isdir(self.dir):
            try:
                with open(cfg_path) as fh:
                    old = json.load(fh)
            except (OSError, ValueError):
                old = None
            if old != self.config:
                raise ConfigError(f"--resume: {self.dir} holds partial results of another "
                                  "configuration (remove it, or run with the same options)")
        else:
            if os.path.isdir(self.dir):
                shutil.rmtree(self.dir)
            os.makedirs(self.dir)
            atomic_write_text(cfg_path, dumps_json(self.config) + "\n")

    def _path(self, i: int) -> str:
        return os.path.join(self.dir, f"chunk-{i:06d}.json")

    def get(self, i: int) -> Any | None:
        """Chunk i's result, or None when it has not been computed (or was cut short)."""
        try:
            with open(self._path(i)) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def put(self, i: int, result: Any) -> Any:
        """Store chunk i's result (atomically); returns it as read back (JSON round trip), so that
        a computed chunk and a resumed one are the same values."""
        text = dumps_json(result)
        atomic_write_text(self._path(i), text + "\n")
        return json.loads(text)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
