"""The pose-network run: folder rules, exact resume, the e2e phase, a clear stop on a non-finite loss."""

import json

import pytest
import torch

from bopnp.errors import CheckpointError, ConfigError, TrainingError
from bopnp.train.checkpoint import load_checkpoint
from bopnp.train.config import PoseTrainConfig
from bopnp.train.pose import PoseTrainer, holdout_split, train_pose


def _config(bop, name, out, **kw):
    base = dict(
        bop_path=str(bop),
        name=name,
        steps=6,
        batch_size=4,
        width=4,
        bottleneck=0,
        workers=0,
        out=str(out),
        ckpt_every=2,
        log_every=1,
        val_every=0,
        val_crops=4,
    )
    return PoseTrainConfig(**{**base, **kw})


def _weights(path):
    return load_checkpoint(path)["model"]


def test_run_writes_its_folder_validates_and_refuses_to_overwrite(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    cfg = _config(bop, name, tmp_path / "run")
    summary = train_pose(cfg, progress=False)
    run = tmp_path / "run"
    for f in ("config.json", "last.pt", "best.pt", "log.jsonl", "augmented.png"):
        assert (run / f).is_file(), f
    assert PoseTrainConfig.from_dict(json.loads((run / "config.json").read_text())) == cfg
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    val = [r for r in records if r.get("validation")]
    assert len(val) == 1 and 0 <= val[0]["add_s"] <= 1 and summary.validations[0]["step"] == 6
    # held-out L_3D: beta-weighted L1 summed over 3 coordinates in [-1, 1], so in (0, 6 * beta]
    assert 0 < val[0]["l3d"] <= 6 * cfg.loss.beta and "L_3D" in summary.format()
    assert load_checkpoint(run / "last.pt")["state"]["step"] == 6
    with pytest.raises(ConfigError, match="--resume"):
        train_pose(cfg, progress=False)
    (run / "notes.txt").write_text("mine")  # --overwrite removes the run's files, nothing else of the folder
    train_pose(_config(bop, name, run, steps=2), overwrite=True, progress=False)
    assert (run / "notes.txt").read_text() == "mine"
    assert load_checkpoint(run / "last.pt")["state"]["step"] == 2


def test_killed_run_resumes_to_the_same_weights(tiny_train_dataset, tmp_path, monkeypatch):
    bop, name = tiny_train_dataset
    full = _config(bop, name, tmp_path / "full", steps=7, val_fraction=0.0)
    train_pose(full, progress=False)

    part = _config(bop, name, tmp_path / "part", steps=7, val_fraction=0.0)
    original = PoseTrainer.step_fn

    def dies_at_step_5(self, model, batch, step):  # step 4 was checkpointed; step 5 runs half-way
        if step == 4:
            raise KeyboardInterrupt
        return original(self, model, batch, step)

    monkeypatch.setattr(PoseTrainer, "step_fn", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_pose(part, progress=False)
    assert load_checkpoint(tmp_path / "part" / "last.pt")["state"]["step"] == 4
    monkeypatch.setattr(PoseTrainer, "step_fn", original)
    summary = train_pose(part, resume=True, progress=False)
    assert summary.resumed_from == 4
    a, b = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "part" / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_resume_refuses_other_settings_and_a_missing_run(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_pose(_config(bop, name, tmp_path / "none"), resume=True, progress=False)
    train_pose(_config(bop, name, tmp_path / "r", steps=2, val_fraction=0.0), progress=False)
    with pytest.raises(CheckpointError, match="lr"):
        train_pose(_config(bop, name, tmp_path / "r", steps=4, val_fraction=0.0, lr=0.5), resume=True, progress=False)


def test_e2e_phase_adds_the_projection_loss_for_its_steps(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    cfg = _config(bop, name, tmp_path / "e2e", steps=5, e2e=True, e2e_steps=2, val_fraction=0.0)
    assert cfg.e2e_start == 3
    train_pose(cfg, progress=False)
    records = [json.loads(line) for line in (tmp_path / "e2e" / "log.jsonl").read_text().splitlines()]
    with_proj = [r["step"] for r in records if "proj" in r]
    assert with_proj == [4, 5]


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_batch(tiny_train_dataset, tmp_path, monkeypatch):
    bop, name = tiny_train_dataset
    original = PoseTrainer.step_fn

    def nan_at_step_3(self, model, batch, step):
        out = original(self, model, batch, step)
        if step == 2:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(PoseTrainer, "step_fn", nan_at_step_3)
    with pytest.raises(TrainingError, match=r"step 3 .*nonfinite\.pt"):
        train_pose(_config(bop, name, tmp_path / "nan", val_fraction=0.0), progress=False)
    saved = load_checkpoint(tmp_path / "nan" / "nonfinite.pt")
    assert saved["state"]["step"] == 2 and saved["batch"]["image"].shape[0] == 4


def test_holdout_takes_the_last_scenes_or_the_last_images_of_a_single_scene():
    keys = [(3, 0), (1, 0), (2, 5), (0, 1), (3, 1)]
    assert holdout_split(keys, 0.25) == ([1, 2, 3], [0, 4])  # scene 3 of 0..3
    one_scene = [(0, 4), (0, 1), (0, 9), (0, 2), (0, 9)]
    assert holdout_split(one_scene, 0.25) == ([0, 1, 3], [2, 4])  # image 9, the last of 4 images
    assert holdout_split([(5, 0)], 0.5) == ([0], [])  # one image stays for training
    assert holdout_split(keys, 0.0) == ([0, 1, 2, 3, 4], [])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"batch_size": 1}, "batch_size"),
        ({"e2e_steps": 3}, "--e2e"),
        ({"e2e": True, "e2e_steps": 99}, "e2e_steps"),
        ({"lr": float("nan")}, "lr"),
        ({"arch": "vit"}, "arch must be one of"),
        ({"norm": "layer"}, "norm must be one of"),
        ({"backbone_weights": "w.pth"}, "resnet"),
    ],
)
def test_config_errors_say_how_to_fix(kw, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        _config(tmp_path, "x", tmp_path / "o", **kw).validate()


def test_loader_workers_change_nothing(tiny_train_dataset, tmp_path):
    """Augmentation is seeded per item, so crops loaded in a worker process (kept across epochs) train the same
    weights as crops loaded in the main process."""
    bop, name = tiny_train_dataset
    for w in (0, 1):  # 6 training crops, batch 4: one step per epoch, so four epochs through one loader
        train_pose(_config(bop, name, tmp_path / f"w{w}", steps=4, workers=w), progress=False)
    a, b = _weights(tmp_path / "w0" / "last.pt"), _weights(tmp_path / "w1" / "last.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_e2e_run_under_bf16_autocast_on_cpu(tiny_train_dataset, tmp_path, monkeypatch):
    """The trainer as it runs on CUDA (bf16 autocast around every step), here with CPU autocast: the e2e steps
    run and log a finite projection loss."""
    init = PoseTrainer.__init__

    def bf16_init(self, *a, **k):
        init(self, *a, **k)
        self.autocast = torch.bfloat16

    monkeypatch.setattr(PoseTrainer, "__init__", bf16_init)
    bop, name = tiny_train_dataset
    cfg = _config(bop, name, tmp_path / "e2e", steps=4, e2e=True, e2e_steps=2, val_fraction=0.0)
    train_pose(cfg, progress=False)
    records = [json.loads(line) for line in (tmp_path / "e2e" / "log.jsonl").read_text().splitlines()]
    proj = [r["proj"] for r in records if "proj" in r]
    assert len(proj) == 2 and all(p == p and abs(p) != float("inf") for p in proj)


def _records(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_log_records_the_start_up_and_both_rates_with_the_wait_for_data(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    train_pose(_config(bop, name, tmp_path / "r", steps=5, log_every=2, val_fraction=0.0), progress=False)
    records = _records(tmp_path / "r")
    start = [r for r in records if r.get("startup")]
    assert len(start) == 1 and start[0]["step"] == 1
    phases = {k: v for k, v in start[0].items() if k.endswith("_s") and k != "total_s"}
    assert {"data_s", "model_s", "loader_s", "first_batch_s", "first_step_s"} <= set(phases)
    assert all(v >= 0 for v in phases.values()) and start[0]["total_s"] == pytest.approx(sum(phases.values()), abs=0.01)
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [2, 4]
    for r in steps:  # the end-to-end rate counts the wait for data too, so it is at most the step's
        assert 0 < r["crops_s_e2e"] <= r["crops_s"] and 0 <= r["data_wait"] <= 1
        assert r["crops_s_e2e"] == pytest.approx(r["crops_s"] * (1 - r["data_wait"]), rel=1e-6)


def test_non_finite_loss_read_at_the_end_of_a_window_keeps_the_weights_before_it(
    tiny_train_dataset, tmp_path, monkeypatch
):
    """Losses are read every log_every steps: a NaN at step 3 is found at step 4, yet the weights saved are those
    after step 2 (the fused optimiser skipped steps 3 and 4 on the device) and the batch is step 3's."""
    bop, name = tiny_train_dataset
    train_pose(_config(bop, name, tmp_path / "two", steps=2, val_fraction=0.0, log_every=4), progress=False)
    original = PoseTrainer.step_fn
    seen = {}

    def nan_at_step_3(self, model, batch, step):
        out = original(self, model, batch, step)
        if step == 2:
            seen["ids"] = batch["im_id"].clone()
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(PoseTrainer, "step_fn", nan_at_step_3)
    with pytest.raises(TrainingError, match=r"step 3 .*nonfinite\.pt"):
        train_pose(
            _config(bop, name, tmp_path / "nan2", steps=6, val_fraction=0.0, log_every=4, ckpt_every=0), progress=False
        )
    saved = load_checkpoint(tmp_path / "nan2" / "nonfinite.pt")
    assert saved["state"]["step"] == 2 and torch.equal(saved["batch"]["im_id"], seen["ids"])
    ref = _weights(tmp_path / "two" / "last.pt")
    for k in ref:
        torch.testing.assert_close(saved["model"][k], ref[k], rtol=0, atol=0, msg=k)
    assert [r["step"] for r in _records(tmp_path / "nan2") if "loss" in r] == []  # nothing logged past the window


def test_resumed_twice_equals_uninterrupted_random_states_included(tiny_train_dataset, tmp_path, monkeypatch):
    """The interrupted run validates at step 2 where the uninterrupted one does not, and is killed twice: the
    weights and every random generator's state in last.pt still equal the uninterrupted run's."""
    bop, name = tiny_train_dataset
    train_pose(_config(bop, name, tmp_path / "full", steps=6, val_every=0), progress=False)
    part = _config(bop, name, tmp_path / "part", steps=6, val_every=2)
    original = PoseTrainer.step_fn
    for kill_at in (3, 5):

        def dies(self, model, batch, step, kill_at=kill_at):
            if step == kill_at:
                raise KeyboardInterrupt
            return original(self, model, batch, step)

        monkeypatch.setattr(PoseTrainer, "step_fn", dies)
        with pytest.raises(KeyboardInterrupt):
            train_pose(part, resume=kill_at > 3, progress=False)
        part = _config(bop, name, tmp_path / "part", steps=6, val_every=0)
    monkeypatch.setattr(PoseTrainer, "step_fn", original)
    train_pose(part, resume=True, progress=False)
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "part" / "last.pt")
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    assert a["rng"]["python"] == b["rng"]["python"]
    assert torch.equal(a["rng"]["numpy"]["keys"], b["rng"]["numpy"]["keys"])
    assert a["rng"]["numpy"]["pos"] == b["rng"]["numpy"]["pos"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def test_checkpoints_with_non_finite_weights_are_refused_naming_the_file(tiny_train_dataset, tmp_path):
    from bopnp.infer.network import load_pose_network
    from bopnp.train.checkpoint import save_checkpoint

    bop, name = tiny_train_dataset
    cfg = _config(bop, name, tmp_path / "r", steps=2, val_fraction=0.0)
    train_pose(cfg, progress=False)
    last = tmp_path / "r" / "last.pt"
    state = load_checkpoint(last)
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = state["model"][key] * float("nan")
    save_checkpoint(last, state)
    with pytest.raises(CheckpointError, match=rf"{last}.*NaN or infinite.*{key}"):
        train_pose(_config(bop, name, tmp_path / "r", steps=4, val_fraction=0.0), resume=True, progress=False)
    with pytest.raises(CheckpointError, match=rf"{last}.*NaN or infinite"):
        load_pose_network(last)


def test_loader_workers_are_bounded_by_the_cores_and_the_cut_logged(tiny_train_dataset, tmp_path, monkeypatch, caplog):
    import bopnp.parallel

    monkeypatch.setattr(bopnp.parallel, "usable_cpus", lambda: 1)
    bop, name = tiny_train_dataset
    trainer = PoseTrainer(_config(bop, name, tmp_path / "w", workers=5, val_fraction=0.0), progress=False)
    with caplog.at_level("WARNING"):
        loader = trainer.make_loader()
    assert loader.num_workers == 1 and trainer.workers == 1
    assert [r.getMessage() for r in caplog.records if "capped" in r.getMessage()] == [
        "--workers 5 capped to 1 worker process(es) (limited by usable CPU cores: 1)"
    ]


def test_a_time_budget_fixes_the_steps_records_them_and_changes_nothing_else(tiny_train_dataset, tmp_path):
    """--minutes measures a few steps (and gives every state back), then runs the steps that fit: the same weights
    as a run given that step count; a resumed budgeted run keeps its steps, and refuses another budget (which would
    otherwise train the --steps default)."""
    bop, name = tiny_train_dataset
    cfg = _config(bop, name, tmp_path / "b", steps=1000, minutes=0.25, val_fraction=0.0, e2e=True, ckpt_every=0)
    summary = train_pose(cfg, progress=False)
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    n = saved["steps"]
    assert saved["minutes"] == 0.25 and summary.steps == n and 2 <= n < 1000
    budget = next(r for r in _records(tmp_path / "b") if r.get("startup"))["budget"]
    assert budget["steps"] == n and budget["train_step_s"] > 0 and budget["e2e_step_s"] > 0
    assert load_checkpoint(tmp_path / "b" / "last.pt")["state"]["step"] == n
    plain = _config(bop, name, tmp_path / "p", steps=n, val_fraction=0.0, e2e=True, ckpt_every=0)
    train_pose(plain, progress=False)
    a, b = _weights(tmp_path / "b" / "last.pt"), _weights(tmp_path / "p" / "last.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    again = train_pose(_config(bop, name, tmp_path / "b", steps=7, minutes=0.25, val_fraction=0.0, e2e=True,
                               ckpt_every=0), resume=True, progress=False)  # fmt: skip
    assert again.steps == n
    with pytest.raises(CheckpointError, match=r"--minutes 0.25, which fixed its \d+ steps"):
        train_pose(_config(bop, name, tmp_path / "b", minutes=0.5, val_fraction=0.0, e2e=True, ckpt_every=0),
                   resume=True, progress=False)  # fmt: skip


def test_large_batch_settings_scale_the_learning_rate():
    base = PoseTrainConfig(batch_size=64, lr=1e-3)
    assert base.peak_lr() == 1e-3
    assert PoseTrainConfig(batch_size=64, lr=1e-3, lr_scale="sqrt").peak_lr() == pytest.approx(2e-3)
    assert PoseTrainConfig(batch_size=64, lr=1e-3, lr_scale="linear").peak_lr(world_size=2) == pytest.approx(8e-3)
    with pytest.raises(ConfigError, match="minutes"):
        PoseTrainConfig(minutes=0.0).validate()


def test_start_up_record_names_the_threads_beside_the_workers(tiny_train_dataset, tmp_path):
    """The start-up record says how many intra-op threads ran beside the loader workers (on a busy CPU, threads
    beside busy workers wait on each other: OMP_NUM_THREADS=1 is the remedy the README gives)."""
    bop, name = tiny_train_dataset
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_pose(_config(bop, name, tmp_path / "w", steps=2, workers=1, val_fraction=0.0), progress=False)
    finally:
        torch.set_num_threads(before)
    start = next(r for r in _records(tmp_path / "w") if r.get("startup"))
    assert start["workers"] == 1 and start["threads"] == 1
