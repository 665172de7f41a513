"""The pose trainer augments each training batch on its device, after the batch reaches it and before the network;
validation crops are not augmented."""

import pytest
import torch

from bopnp.data.batch_augment import augment_batch
from bopnp.data.crop_dataset import open_crop_datasets
from bopnp.data.training_set import TrainingSet
from bopnp.train.config import PoseTrainConfig
from bopnp.train.pose import PoseTrainer


def test_training_batches_are_augmented_before_the_network_and_validation_crops_never(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    cfg = PoseTrainConfig(
        bop_path=str(bop), name=name, steps=2, batch_size=4, width=4, bottleneck=0, workers=0, out=str(tmp_path / "r"),
        val_fraction=0.5, val_crops=4, device="cpu",
    )  # fmt: skip
    trainer = PoseTrainer(cfg, progress=False)
    batch = next(iter(trainer.make_loader()))
    assert "aug_seed" in batch and "background" in batch  # the workers sent raw crops
    seen = []
    trainer.net.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    trainer.step_fn(trainer.model, batch, 0)
    expected = augment_batch(batch, cfg.augment)["image"]
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=0)
    assert (seen[0] - batch["image"]).abs().mean() > 0.01
    val = trainer.val_set
    assert val.augment is None and not val.device_augment
    plain = TrainingSet(open_crop_datasets(bop / name / "crops" / "train_pbr"), indices=val.indices)
    for i in range(len(val)):
        item = val[i]
        assert "aug_seed" not in item
        torch.testing.assert_close(item["image"], plain[i]["image"], rtol=0, atol=0)


def test_cpu_loader_workers_augment_the_batches_they_collate(tiny_train_dataset, tmp_path):
    bop, name = tiny_train_dataset
    runs = {}
    for workers in (0, 1):
        cfg = PoseTrainConfig(
            bop_path=str(bop), name=name, steps=2, batch_size=4, width=4, bottleneck=0, workers=workers,
            out=str(tmp_path / f"w{workers}"), val_fraction=0.0, device="cpu",
        )  # fmt: skip
        trainer = PoseTrainer(cfg, progress=False)
        trainer.sampler.set_epoch(0)
        loader = trainer.make_loader()
        runs[workers] = next(iter(loader))
        del loader
    assert "aug_seed" in runs[0] and "aug_seed" not in runs[1]  # the worker augmented its batch
    assert PoseTrainer.augment(trainer, runs[1]) is runs[1]
    augmented = augment_batch(runs[0], cfg.augment)
    for key in ("image", "xyz", "mask_full", "K", "box_xyxy"):
        torch.testing.assert_close(runs[1][key], augmented[key], rtol=0, atol=1e-6, msg=key)


def test_crops_held_in_memory_train_the_same_weights(tiny_train_dataset, tmp_path, monkeypatch):
    from bopnp.errors import ConfigError
    from bopnp.train import pose
    from bopnp.train.checkpoint import load_checkpoint
    from bopnp.train.pose import train_pose

    bop, name = tiny_train_dataset
    base = dict(bop_path=str(bop), name=name, steps=4, batch_size=4, width=4, bottleneck=0, workers=0, device="cpu")
    for mode in ("on", "off"):
        cfg = PoseTrainConfig(**base, cache_in_memory=mode, out=str(tmp_path / mode), val_every=0, val_crops=4)
        trainer = PoseTrainer(cfg, progress=False)
        assert (trainer.device_crops is not None) == (mode == "on")
        train_pose(cfg, progress=False, overwrite=True)
    a, b = (load_checkpoint(tmp_path / m / "last.pt")["model"] for m in ("on", "off"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    auto = PoseTrainer(PoseTrainConfig(**base, out=str(tmp_path / "auto")), progress=False)
    assert auto.device_crops is None  # auto holds crops on a GPU only
    monkeypatch.setattr(pose, "fits_in_memory", lambda nbytes, device: (False, 1024))
    with pytest.raises(ConfigError, match="cache-in-memory on: the .* training crops take"):
        PoseTrainer(PoseTrainConfig(**base, cache_in_memory="on", out=str(tmp_path / "big")), progress=False)
