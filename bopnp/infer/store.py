"""The per-image results of an unfinished prediction run, kept so that an interrupted run resumes.

A work folder beside the CSV holds ``settings.json`` (what the run depends on: a resumed run must match it) and
``images.jsonl``: one line per finished image, appended and flushed to disk after every batch (under torchrun, each
process appends to its own ``images.RANK.jsonl``). A run killed mid-line leaves a last line that does not parse: it
is dropped on resume, when the main process gathers every process's lines into ``images.jsonl``, so that image is
simply done again.

Example:
    >>> import tempfile
    >>> store = WorkStore(Path(tempfile.mkdtemp()) / "m_demo-test.work")
    >>> store.open({"method": "m"}, resume=False)
    {}
    >>> store.append([ImageRecord(0, 3, 0.5, 2, 1, [])]); store.close()
    >>> sorted(WorkStore(store.path).open({"method": "m"}, resume=True))
    [(0, 3)]
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bopnp.bop.atomic import write_text_atomic
from bopnp.bop.records import ResultRow
from bopnp.errors import ConfigError

SETTINGS_FILE = "settings.json"
IMAGES_FILE = "images.jsonl"


@dataclass
class ImageRecord:
    """What one image gave.

    Attributes:
        scene_id, im_id: the image.
        time_s: seconds per image (BOP's ``time``: detection included).
        detections: detections the source gave for the image.
        selected: those the pose stage worked on (per object as many as the targets ask).
        estimates: ``{"obj_id", "score", "R" (9 numbers, row-major), "t" (3 numbers, mm)}`` of the valid poses.
    """

    scene_id: int
    im_id: int
    time_s: float
    detections: int
    selected: int
    estimates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, int]:
        return (int(self.scene_id), int(self.im_id))

    def to_json(self) -> dict[str, Any]:
        return {
            "scene_id": int(self.scene_id),
            "im_id": int(self.im_id),
            "time_s": float(self.time_s),
            "detections": int(self.detections),
            "selected": int(self.selected),
            "estimates": self.estimates,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ImageRecord:
        return cls(
            int(d["scene_id"]),
            int(d["im_id"]),
            float(d["time_s"]),
            int(d["detections"]),
            int(d["selected"]),
            [dict(e) for e in d["estimates"]],
        )

    def result_rows(self) -> list[ResultRow]:
        """The image's rows of the BOP19 CSV."""
        return [
            ResultRow(
                self.scene_id,
                self.im_id,
                int(e["obj_id"]),
                float(e["score"]),
                np.asarray(e["R"], np.float64).reshape(3, 3),
                np.asarray(e["t"], np.float64).reshape(3),
                float(self.time_s),
            )
            for e in self.estimates
        ]


def settings_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The settings that differ, one ``key: old there, new now`` each."""
    keys = sorted(set(old) | set(new))
    return [
        f"{k}: {old.get(k)!r} there, {new.get(k)!r} now"
        for k in keys
        if json.dumps(old.get(k), sort_keys=True) != json.dumps(new.get(k), sort_keys=True)
    ]


class WorkStore:
    """The work folder of one prediction run (see the module docstring).

    Args:
        path: the folder.
        rank: this process's rank under torchrun (0: the main process, which creates and gathers).
    """

    def __init__(self, path: str | os.PathLike, rank: int = 0):
        self.path = Path(path)
        self.rank = int(rank)
        self._file = None

    @property
    def own_file(self) -> Path:
        return self.path / (IMAGES_FILE if self.rank == 0 else f"images.{self.rank}.jsonl")

    def check(self, settings: dict[str, Any]) -> None:
        """Raise :class:`ConfigError` when the folder holds an unfinished run with other settings (reads only)."""
        if not self.exists:
            return
        old = json.loads((self.path / SETTINGS_FILE).read_text(encoding="utf-8"))
        diff = settings_differences(old, settings)
        if diff:
            raise ConfigError(
                f"{self.path} holds an unfinished run with other settings ({'; '.join(diff)}): run the same "
                "command to finish it, or pass --overwrite to start over, or another --method or --out"
            )

    @property
    def exists(self) -> bool:
        return (self.path / SETTINGS_FILE).is_file()

    def open(self, settings: dict[str, Any], resume: bool) -> dict[tuple[int, int], ImageRecord]:
        """Start a new work folder, or reopen the existing one (``resume``) whose settings must equal ``settings``.

        The main process (rank 0) creates the folder, or gathers every process's finished lines into
        ``images.jsonl`` (torn lines dropped); the others open their own file after it (call them after a barrier).

        Returns:
            the records of the images finished earlier, by (scene_id, im_id).
        Raises:
            ConfigError: the folder holds a run with other settings (naming them).
        """
        done: dict[tuple[int, int], ImageRecord] = {}
        if self.rank != 0:
            self.check(settings)
            done = self.read()
            self._file = open(self.own_file, "a", encoding="utf-8")
            return done
        if resume and self.exists:
            self.check(settings)
            done = self.read()
            # gathered without torn lines, so that new lines start on a line of their own
            write_text_atomic(self.path / IMAGES_FILE, "".join(json.dumps(r.to_json()) + "\n" for r in done.values()))
            for p in self.path.glob("images.*.jsonl"):
                p.unlink()
        else:
            if self.path.exists():
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True)
            write_text_atomic(self.path / SETTINGS_FILE, json.dumps(settings, indent=1, sort_keys=True) + "\n")
            write_text_atomic(self.path / IMAGES_FILE, "")
        self._file = open(self.path / IMAGES_FILE, "a", encoding="utf-8")
        return done

    def read(self) -> dict[tuple[int, int], ImageRecord]:
        """Every finished image of every process's file (lines that do not parse are skipped)."""
        done: dict[tuple[int, int], ImageRecord] = {}
        for path in sorted(self.path.glob("images*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = ImageRecord.from_json(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue  # the torn line of a killed run: that image is done again
                done[rec.key] = rec
        return done

    def append(self, records: Sequence[ImageRecord]) -> None:
        """Add finished images and flush them to disk."""
        if self._file is None:
            raise RuntimeError("WorkStore.append before open")
        for r in records:
            self._file.write(json.dumps(r.to_json()) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


__all__ = ["IMAGES_FILE", "ImageRecord", "SETTINGS_FILE", "WorkStore", "settings_differences"]
