"""The per-image results of an unfinished prediction run, kept so that an interrupted run resumes.

A work folder beside the CSV holds ``settings.json`` (what the run depends on: a resumed run must match it) and
``images.jsonl``: one line per finished image, appended and flushed to disk after every batch. A run killed
mid-line leaves a last line that does not parse: it is dropped (and the file rewritten without it) on resume, so
that image is simply done again.

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
from bopnp.bop.records import PoseEstimate
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

    def pose_estimates(self) -> list[PoseEstimate]:
        """The image's rows of the BOP19 CSV."""
        return [
            PoseEstimate(
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
    """The work folder of one prediction run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = None

    @property
    def exists(self) -> bool:
        return (self.path / SETTINGS_FILE).is_file()

    def open(self, settings: dict[str, Any], resume: bool) -> dict[tuple[int, int], ImageRecord]:
        """Start a new work folder, or reopen the existing one (``resume``) whose settings must equal ``settings``.

        Returns:
            the records of the images finished earlier, by (scene_id, im_id).
        Raises:
            ConfigError: the folder holds a run with other settings (naming them).
        """
        done: dict[tuple[int, int], ImageRecord] = {}
        if resume and self.exists:
            old = json.loads((self.path / SETTINGS_FILE).read_text(encoding="utf-8"))
            diff = settings_differences(old, settings)
            if diff:
                raise ConfigError(
                    f"{self.path} holds an unfinished run with other settings ({'; '.join(diff)}): run the same "
                    "command to finish it, or pass --overwrite to start over, or another --method or --out"
                )
            done = self._read()
            # rewrite without a torn last line, so that new lines start on a line of their own
            write_text_atomic(self.path / IMAGES_FILE, "".join(json.dumps(r.to_json()) + "\n" for r in done.values()))
        else:
            if self.path.exists():
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True)
            write_text_atomic(self.path / SETTINGS_FILE, json.dumps(settings, indent=1, sort_keys=True) + "\n")
            write_text_atomic(self.path / IMAGES_FILE, "")
        self._file = open(self.path / IMAGES_FILE, "a", encoding="utf-8")
        return done

    def _read(self) -> dict[tuple[int, int], ImageRecord]:
        done: dict[tuple[int, int], ImageRecord] = {}
        path = self.path / IMAGES_FILE
        if not path.is_file():
            return done
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
