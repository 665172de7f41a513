"""The detector run: the pose stage's guarantees (folder rules, exact resume, a clear stop on a non-finite loss)
with the detector's data, losses and validation; a few steps on rendered images lower the loss."""

import json
from dataclasses import replace

import pytest
import torch

from bopnp.errors import CheckpointError, ConfigError, TrainingError
from bopnp.models.detector import DetectorSpec, build_from_spec
from bopnp.train.checkpoint import load_checkpoint
from bopnp.train.detector import DetectorTrainer, train_detector
from bopnp.train.detector_config import PRESETS, DetectorNetConfig, DetectorTrainConfig

#: the CPU preset on 64x48 images, with narrower heads still
TINY_NET = replace(
    PRESETS["cpu"],
    min_size=48,
    max_size=64,
    fpn_channels=32,
    box_head_dim=64,
    mask_head_layers=1,
    mask_head_channels=16,
    box_batch_size_per_image=32,
)


@pytest.fixture
def drawn(tiny, tmp_path):
    """(bop_path, name): the tiny drawn dataset with three scenes of two 64x48 images (split ``test``)."""
    tiny.make_dataset(tmp_path / "bop" / "drawn", scenes=3)
    return tmp_path / "bop", "drawn"


def _config(bop, name, out, **kw):
    base = dict(
        bop_path=str(bop),
        name=name,
        split="test",
        steps=6,
        batch_size=2,
        net=TINY_NET,
        optimizer="adamw",
        lr=1e-3,
        workers=0,
        out=str(out),
        ckpt_every=2,
        log_every=1,
        val_every=0,
        val_images=4,
        hub_cache=False,
    )
    return DetectorTrainConfig(**{**base, **kw})


def test_run_writes_its_folder_validates_and_refuses_to_overwrite(drawn, tmp_path):
    bop, name = drawn
    cfg = _config(bop, name, tmp_path / "run", steps=3, ckpt_every=0, val_fraction=0.3)  # scene 3 held out
    summary = train_detector(cfg, progress=False)
    run = tmp_path / "run"
    for f in ("config.json", "last.pt", "best.pt", "log.jsonl", "augmented.png"):
        assert (run / f).is_file(), f
    assert DetectorTrainConfig.from_dict(json.loads((run / "config.json").read_text())) == cfg
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert {"cls", "box", "mask", "rpn_obj", "rpn_box", "images_s"} <= set(steps[0])
    val = [r for r in records if r.get("validation")]
    assert len(val) == 1 and val[0]["instances"] == 3  # scene 3: images 0 (two objects) and 1 (one)
    for k in ("ap_bbox", "ap_segm", "recall50"):
        assert 0 <= val[0][k] <= 1, k
    assert summary.validations[0]["step"] == 3 and "box mAP" in summary.format()
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["state"]["step"] == 3 and ckpt["obj_ids"] == [1, 2] and ckpt["init_source"] == "scratch"
    rebuilt = build_from_spec(DetectorSpec.from_dict(ckpt["detector"]))
    rebuilt.load_state_dict(ckpt["model"])  # what inference does
    with pytest.raises(ConfigError, match="--resume"):
        train_detector(cfg, progress=False)
    train_detector(replace(cfg, steps=1, val_fraction=0.0), overwrite=True, progress=False)
    assert load_checkpoint(run / "last.pt")["state"]["step"] == 1


def test_killed_run_resumes_to_the_same_weights(drawn, tmp_path, monkeypatch):
    bop, name = drawn
    # 6 images, batch 2: an epoch is 3 steps, so the run resumes mid-epoch and crosses an epoch's end
    kw = dict(steps=5, ckpt_every=2, val_fraction=0.0)
    train_detector(_config(bop, name, tmp_path / "full", **kw), progress=False)

    part = _config(bop, name, tmp_path / "part", **kw)
    original = DetectorTrainer.step_fn

    def dies_at_step_3(self, model, batch, step):  # step 2 was checkpointed; step 3 runs half-way
        if step == 2:
            raise KeyboardInterrupt
        return original(self, model, batch, step)

    monkeypatch.setattr(DetectorTrainer, "step_fn", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train_detector(part, progress=False)
    assert load_checkpoint(tmp_path / "part" / "last.pt")["state"]["step"] == 2
    monkeypatch.setattr(DetectorTrainer, "step_fn", original)
    summary = train_detector(part, resume=True, progress=False)
    assert summary.resumed_from == 2
    a, b = load_checkpoint(tmp_path / "full" / "last.pt")["model"], load_checkpoint(tmp_path / "part" / "last.pt")
    b = b["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_a_time_budget_fixes_the_steps_records_them_and_changes_nothing_else(drawn, tmp_path):
    """--minutes times a few steps (giving every state back), then runs the steps that fit: the same weights as a
    run given that step count; a resumed budgeted run keeps its steps."""
    bop, name = drawn
    short = _config(bop, name, tmp_path / "b", steps=10**6, minutes=0.1, val_fraction=0.0, ckpt_every=0)
    summary = train_detector(short, progress=False)
    n = json.loads((tmp_path / "b" / "config.json").read_text())["steps"]
    assert summary.steps == n and 1 <= n < 10**6
    budget = next(r for r in _records(tmp_path / "b") if r.get("startup"))["budget"]
    assert budget["steps"] == n and budget["train_step_s"] > 0 and budget["minutes"] == 0.1
    train_detector(_config(bop, name, tmp_path / "p", steps=n, val_fraction=0.0, ckpt_every=0), progress=False)
    a, b = load_checkpoint(tmp_path / "b" / "last.pt")["model"], load_checkpoint(tmp_path / "p" / "last.pt")["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    again = train_detector(replace(short, steps=3), resume=True, progress=False)
    assert again.steps == n


def _records(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_resume_refuses_other_settings(drawn, tmp_path):
    bop, name = drawn
    train_detector(_config(bop, name, tmp_path / "r", steps=1, val_fraction=0.0), progress=False)
    with pytest.raises(CheckpointError, match="net"):
        other = _config(bop, name, tmp_path / "r", steps=2, val_fraction=0.0, net=replace(TINY_NET, min_size=40))
        train_detector(other, resume=True, progress=False)


def test_non_finite_loss_stops_naming_the_step_and_the_images(drawn, tmp_path, monkeypatch):
    bop, name = drawn
    original = DetectorTrainer.step_fn

    def nan_at_step_2(self, model, batch, step):
        out = original(self, model, batch, step)
        if step == 1:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(DetectorTrainer, "step_fn", nan_at_step_2)
    with pytest.raises(TrainingError, match=r"step 2 .*image \d+/\d+.*nonfinite\.pt"):
        train_detector(_config(bop, name, tmp_path / "nan", steps=3, val_fraction=0.0), progress=False)
    saved = load_checkpoint(tmp_path / "nan" / "nonfinite.pt")
    assert saved["state"]["step"] == 1 and len(saved["batch"]["image"]) == 2


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"lr": 0.0}, "lr"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"net": DetectorNetConfig(backbone="vgg")}, "backbone"),
        ({"objects": (0,)}, "objects"),
        ({"backbone_weights": "/no/such/file.pth"}, "no such file"),
        ({"minutes": 0.0}, "minutes"),
    ],
)
def test_config_errors_say_how_to_fix(kw, match, tmp_path):
    assert DetectorTrainConfig(batch_size=4).learning_rate == 0.005  # torchvision's 0.02 per 16 images
    assert DetectorTrainConfig(optimizer="adamw").learning_rate == 1e-3
    with pytest.raises(ConfigError, match=match):
        _config(tmp_path, "x", tmp_path / "o", **kw).validate()


def test_objects_missing_from_the_dataset_and_too_large_batches_are_refused(drawn, tmp_path):
    bop, name = drawn
    with pytest.raises(ConfigError, match=r"objects \[7\]"):
        DetectorTrainer(_config(bop, name, tmp_path / "a", objects=(1, 7)), progress=False)
    with pytest.raises(ConfigError, match="batch size 9"):
        DetectorTrainer(_config(bop, name, tmp_path / "b", batch_size=9), progress=False)


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(drawn, tmp_path):
    """torchrun with two gloo processes: gradients averaged, batch-norm statistics averaged before saving."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    bop, name = drawn
    script = tmp_path / "ddp_run.py"
    script.write_text(
        textwrap.dedent(f"""
        import torch
        from dataclasses import replace
        from bopnp.train.detector import DetectorTrainer
        from bopnp.train.detector_config import PRESETS, DetectorTrainConfig
        net = replace(PRESETS["cpu"], min_size=48, max_size=64, fpn_channels=32, box_head_dim=64,
                      mask_head_layers=1, mask_head_channels=16, box_batch_size_per_image=32)
        cfg = DetectorTrainConfig(bop_path={str(bop)!r}, name={name!r}, split="test", steps=2, batch_size=1, net=net,
                                  optimizer="adamw", lr=1e-3, workers=0, out={str(tmp_path / "run")!r}, val_every=0,
                                  val_fraction=0.0, device="cpu", hub_cache=False)
        trainer = DetectorTrainer(cfg, progress=False)
        rank = trainer.info.rank
        trainer.run()
        torch.save(trainer.net.state_dict(), {str(tmp_path)!r} + f"/rank{{rank}}.pt")
    """)
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["state"]["step"] == 2
    for k in a:
        torch.testing.assert_close(saved["model"][k], a[k], rtol=0, atol=0, msg=k)


@pytest.mark.slow
def test_briefly_trained_on_rendered_images_it_finds_most_of_their_instances(synth_dataset):
    """From scratch, the demo's network at 128x96 on two rendered training images: the loss falls within a few
    steps, and within 30 steps it finds more than half of the images' visible instances (recall at IoU 0.5 of
    detections scoring at least 0.5)."""
    from bopnp.bop.dataset import BopDataset
    from bopnp.data.detection_set import DetectionSet, collate_detections, detection_records
    from bopnp.metrics.detection import recall_at_iou
    from bopnp.models.detector import build_maskrcnn

    bop, name = synth_dataset
    ds = BopDataset.from_bop_path(bop, name, "train_pbr")
    images = DetectionSet(ds, ds.obj_ids, detection_records(ds, ds.obj_ids)[:2], min_size=96, max_size=128)
    batch = collate_detections([images[0], images[1]])
    net_cfg = replace(PRESETS["cpu"], min_size=96, max_size=128)
    torch.manual_seed(0)
    net = build_maskrcnn(num_classes=len(ds.obj_ids) + 1, **net_cfg.knobs())
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    gts = [{"boxes": t["boxes"].numpy(), "labels": t["labels"].numpy()} for t in batch["targets"]]
    losses, recalls = [], []
    for step in range(1, 31):
        net.train()
        loss = sum(net(batch["image"], batch["targets"]).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step % 5 == 0 and step >= 20:
            net.eval()
            with torch.no_grad():
                out = net(batch["image"])
            recalls.append(recall_at_iou(gts, [{k: o[k].numpy() for k in ("boxes", "labels", "scores")} for o in out]))
            if recalls[-1] > 0.5:
                break
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3]), losses
    assert recalls[-1] > 0.5, recalls
