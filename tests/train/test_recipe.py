"""The time-budgeted recipe at a tiny budget on a CPU: every phase runs, the table reports them, a second call
reuses what is complete."""

import json

import pytest

from bopnp.errors import ConfigError
from bopnp.train.recipe import RecipeConfig, run_recipe


def _tiny(tmp_path, **kw):
    opts = dict(
        bop_path=str(tmp_path / "bop"),
        name="r",
        out=str(tmp_path / "run"),
        minutes=0.15,
        train_images=6,
        test_images=3,
        image_size=(160, 120),
        crop_size=16,
        width=4,
        batch_size=4,
        device="cpu",
        workers=1,
    )
    opts.update(kw)
    return RecipeConfig(**opts)


def test_recipe_runs_every_phase_at_a_tiny_budget_and_reuses_them(tmp_path):
    cfg = _tiny(tmp_path)
    result = run_recipe(cfg, progress=False)
    assert set(result.seconds) == {
        "synth training renders",
        "synth held-out renders",
        "prepare crops",
        "prepare held-out crops",
        "train pose (L_trans + e2e)",
        "score held-out renders",
    }
    train_cfg = json.loads((tmp_path / "run" / "pose" / "config.json").read_text())
    assert result.steps == train_cfg["steps"] >= 2 and train_cfg["minutes"] == 0.15 and train_cfg["e2e"]
    assert 1 <= result.e2e_steps < result.steps or result.steps == 2
    s = result.scores
    assert s["crops"] > 0 and 0 <= s["ar"] <= 1 and s["ar"] == pytest.approx((s["mssd"] + s["mspd"]) / 2)
    table = result.format()
    assert "AR*" in table and "score held-out renders" in table and f"{result.steps} steps" in table
    saved = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert saved["scores"] == pytest.approx(s) and saved["steps"] == result.steps
    again = run_recipe(cfg, progress=False)  # complete: nothing is rendered, cut or trained again
    assert again.steps == result.steps and again.scores == pytest.approx(s)
    assert again.seconds["train pose (L_trans + e2e)"] < result.seconds["train pose (L_trans + e2e)"]


def test_recipe_refuses_the_same_seed_for_held_out_renders(tmp_path):
    with pytest.raises(ConfigError, match="seed"):
        _tiny(tmp_path, test_seed=0).validate()
