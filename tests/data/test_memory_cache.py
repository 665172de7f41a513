"""Crops held on the device give the batches the DataLoader collates from the cache, in the sampler's order."""

import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from bopnp.data.crop_dataset import open_crop_datasets
from bopnp.data.memory_cache import BYTES_PER_PIXEL, DeviceBatches, DeviceCrops, crops_nbytes, fits_in_memory
from bopnp.data.training_set import AugmentConfig, EpochSampler, TrainingSet


def _equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("augment", [AugmentConfig(), None])
def test_batches_equal_the_collated_items(tiny_cache, augment):
    ts = TrainingSet(open_crop_datasets(tiny_cache, min_visib_fract=0.5), augment, [11, 3, 0, 7, 5, 8], True)
    crops = DeviceCrops(ts, torch.device("cpu"))
    assert crops.nbytes == crops_nbytes(len(ts), 32) == len(ts) * 32 * 32 * BYTES_PER_PIXEL
    index, seed = torch.tensor([0, 5, 2, 2, 4]), torch.tensor([17, 3, 99, 100, 5])
    expected = default_collate([ts[(int(i), int(s))] for i, s in zip(index, seed)])
    _equal(crops.batch(index, seed), expected)


def test_epochs_equal_the_data_loader(tiny_cache):
    ts = TrainingSet(open_crop_datasets(tiny_cache), AugmentConfig(), device_augment=True)
    sampler = EpochSampler(len(ts), seed=4)
    batches = DeviceBatches(DeviceCrops(ts, torch.device("cpu")), sampler, 5)
    loader = DataLoader(ts, batch_size=5, sampler=sampler, drop_last=True)
    for epoch, start in ((0, 0), (3, 4)):
        sampler.set_epoch(epoch, start)
        mine, theirs = list(batches), list(loader)
        assert len(mine) == len(theirs) == len(batches) == (12 - start) // 5
        for a, b in zip(mine, theirs):
            _equal(a, b)


def test_fits_in_memory_leaves_room_for_training():
    fits, free = fits_in_memory(1, torch.device("cpu"))
    assert free > 0 and fits
    assert not fits_in_memory(free, torch.device("cpu"))[0]
