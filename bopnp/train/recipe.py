"""A time-budgeted pose recipe in one call: render a training set of the given models, cut its crops, train the
pose network for a number of minutes (L_trans, then the e2e phase through the PnP layer), and score it on held-out
renders of another seed with the ground-truth boxes (:func:`bopnp.train.holdout.score_checkpoint`).

Every phase resumes: a dataset, cache or run that is complete is reused, an interrupted one is finished, so running
the recipe again redoes nothing but the scoring. :meth:`RecipeResult.format` prints the scores and the seconds of
each phase (``bopnp recipe``, ``make lmo-synth-recipe``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from bopnp.bop.atomic import write_text_atomic
from bopnp.data.prepare import PrepareConfig, prepare
from bopnp.data.training_set import AUGMENT_PRESETS, AugmentConfig
from bopnp.errors import ConfigError
from bopnp.synth.generator import LMO_INTRINSICS, SynthConfig, synthesize
from bopnp.train.checkpoint import load_checkpoint
from bopnp.train.config import LrScale, PoseTrainConfig
from bopnp.train.holdout import score_checkpoint
from bopnp.train.pose import train_pose


@dataclass(frozen=True)
class RecipeConfig:
    """The recipe's settings.

    Attributes:
        models_dir: a BOP ``models/`` folder (e.g. LM-O's) to render; None: the procedural objects.
        bop_path: where the two datasets go: ``name`` (training renders) and ``name-test`` (held-out renders).
        name: the training dataset's name. out: the run folder (None: ``results/recipe/NAME``).
        minutes: the pose network's training budget (data and scoring come on top).
        train_images, test_images: rendered images of each dataset. seed, test_seed: their seeds (must differ).
        image_size: (width, height) of the renders, pixels; the intrinsics are LM-O's scaled to it.
        crop_size, width, batch_size, lr, lr_scale, warmup, augment, compile: the training (see
            :class:`bopnp.train.config.PoseTrainConfig`); the last quarter of the steps run end to end.
        device: ``auto``, ``cpu`` or ``cuda``. workers: rendering and cutting processes and loader workers (None: one
            per core, bounded). val_every: validation interval, steps (0: only at the end).
    """

    models_dir: str | None = None
    bop_path: str = "datasets"
    name: str = "lmo-synth"
    out: str | None = None
    minutes: float = 8.0
    train_images: int = 1000
    test_images: int = 100
    seed: int = 0
    test_seed: int = 1
    image_size: tuple[int, int] = (640, 480)
    crop_size: int = 64
    width: int = 16
    batch_size: int = 256
    lr: float = 1e-3
    lr_scale: LrScale = "sqrt"
    warmup: float = 0.05
    augment: str = "light"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int | None = None
    val_every: int = 0
    compile: bool = False

    @property
    def test_name(self) -> str:
        return f"{self.name}-test"

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("results") / "recipe" / self.name

    def validate(self) -> RecipeConfig:
        if self.seed == self.test_seed:
            raise ConfigError(f"seed and test_seed must differ (held-out renders), both are {self.seed}")
        if self.train_images < 1 or self.test_images < 1:
            raise ConfigError("train_images and test_images must be at least 1")
        if self.augment not in AUGMENT_PRESETS:
            raise ConfigError(f"augment must be one of {list(AUGMENT_PRESETS)}, got {self.augment!r}")
        if min(self.image_size) < 16:
            raise ConfigError(f"image_size must be at least 16 x 16 pixels, got {self.image_size}")
        self.train_config(steps=4).validate()
        return self

    def intrinsics(self) -> tuple[float, float, float, float]:
        """LM-O's intrinsics (640 x 480) scaled to :attr:`image_size`."""
        fx, fy, cx, cy = LMO_INTRINSICS
        sx, sy = self.image_size[0] / 640, self.image_size[1] / 480
        return (fx * sx, fy * sy, cx * sx, cy * sy)

    def train_config(self, steps: int = 2000) -> PoseTrainConfig:
        """The pose run: ``minutes`` turned into steps by :class:`bopnp.train.runner.Runner` (``steps`` is the
        placeholder it replaces)."""
        return PoseTrainConfig(
            bop_path=str(self.bop_path),
            name=self.name,
            out=str(self.run_dir / "pose"),
            steps=steps,
            minutes=self.minutes,
            e2e=True,
            batch_size=self.batch_size,
            lr=self.lr,
            lr_scale=self.lr_scale,
            warmup=self.warmup,
            width=self.width,
            val_every=self.val_every,
            device=self.device,
            workers=2 if self.workers is None else self.workers,
            seed=self.seed,
            compile=self.compile,
            augment=AugmentConfig.preset(self.augment),
        )


@dataclass
class RecipeResult:
    """What the recipe did: the seconds of each phase, the steps trained and the held-out scores."""

    config: RecipeConfig
    seconds: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    e2e_steps: int = 0
    scores: dict[str, float] = field(default_factory=dict)

    def format(self) -> str:
        s = self.scores
        lines = [
            f"held-out renders: {self.config.test_name}/test, {int(s.get('crops', 0))} crops with GT boxes; "
            f"trained {self.steps} steps ({self.e2e_steps} end to end) in {self.config.minutes:g} min",
            "| AR* | MSSD | MSPD | ADD(-S) | poses found |",
            "| --- | --- | --- | --- | --- |",
            f"| {s.get('ar', 0):.3f} | {s.get('mssd', 0):.3f} | {s.get('mspd', 0):.3f} | {s.get('add_s', 0):.3f} | "
            f"{s.get('valid', 0):.2f} |",
            "",
            "| phase | seconds |",
            "| --- | --- |",
            *(f"| {k} | {v:.1f} |" for k, v in self.seconds.items()),
            f"| total | {sum(self.seconds.values()):.1f} |",
            "AR* = (MSSD + MSPD) / 2, the BOP19 AR without VSD; 0 s: the phase's output was already complete",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "seconds": self.seconds,
            "steps": self.steps,
            "e2e_steps": self.e2e_steps,
            "scores": self.scores,
        }


def _synth(cfg: RecipeConfig, name: str, train: int, test: int, seed: int, progress: bool) -> None:
    exists = (Path(cfg.bop_path) / name).is_dir()
    synthesize(
        SynthConfig(
            name=name,
            bop_path=Path(cfg.bop_path),
            train_images=train,
            test_images=test,
            seed=seed,
            models_dir=Path(cfg.models_dir) if cfg.models_dir else None,
            workers=cfg.workers,
            mode="resume" if exists else "new",
            width=cfg.image_size[0],
            height=cfg.image_size[1],
            intrinsics=cfg.intrinsics(),
            progress=progress,
        )
    )


def run_recipe(config: RecipeConfig, *, progress: bool | None = None) -> RecipeResult:
    """Run the recipe (see the module docstring); every phase resumes. Writes ``recipe.json`` (settings, seconds,
    scores) into the run folder."""
    cfg = config.validate()
    result = RecipeResult(cfg)
    show = bool(progress)

    def timed(phase: str, fn, *args) -> None:
        t0 = time.perf_counter()
        fn(*args)
        result.seconds[phase] = time.perf_counter() - t0

    timed("synth training renders", _synth, cfg, cfg.name, cfg.train_images, 0, cfg.seed, show)
    timed("synth held-out renders", _synth, cfg, cfg.test_name, 0, cfg.test_images, cfg.test_seed, show)

    def cut(name: str, split: str) -> None:
        p = PrepareConfig(bop_path=Path(cfg.bop_path), name=name, split=split, crop_size=cfg.crop_size)
        prepare(p.validate(), progress=show)

    timed("prepare crops", cut, cfg.name, "train_pbr")
    timed("prepare held-out crops", cut, cfg.test_name, "test")

    train = cfg.train_config()
    last = Path(train.run_dir) / "last.pt"
    saved_run = load_checkpoint(last) if last.is_file() else None
    done = saved_run is not None and saved_run["state"]["step"] >= saved_run["config"]["steps"]
    t0 = time.perf_counter()
    if not done:
        train_pose(train, resume=last.is_file(), progress=progress)
    result.seconds["train pose (L_trans + e2e)"] = time.perf_counter() - t0
    saved = json.loads((Path(train.run_dir) / "config.json").read_text())
    result.steps = int(saved["steps"])
    result.e2e_steps = result.steps - PoseTrainConfig.from_dict(saved).e2e_start

    t0 = time.perf_counter()
    result.scores = score_checkpoint(last, cfg.bop_path, cfg.test_name, "test", device=cfg.device)
    result.seconds["score held-out renders"] = time.perf_counter() - t0
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cfg.run_dir / "recipe.json", json.dumps(result.to_dict(), indent=1, default=str) + "\n")
    return result


__all__ = ["RecipeConfig", "RecipeResult", "run_recipe"]
