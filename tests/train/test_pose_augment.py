"""The pose trainer augments each training batch on its device, after the batch reaches it and before the network;
validation crops are not augmented."""

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
