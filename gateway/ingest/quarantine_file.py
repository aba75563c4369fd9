"""Quarantine as a JSON Lines file: the replay-side twin of the database table."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import orjson

from gateway.ingest.rejections import Rejection, rejection_to_json


class QuarantineFile:
    """Appends one JSON object per rejection; opened lazily so a clean replay
    leaves no empty file behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self.written = 0

    def write(self, rejections: Iterable[Rejection]) -> None:
        for rejection in rejections:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("wb")
            self._handle.write(orjson.dumps(rejection_to_json(rejection)) + b"\n")
            self.written += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> QuarantineFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
