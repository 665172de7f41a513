"""A crop cache cut short (before or while a run reads it) raises a typed error naming the file, instead of a bus
error in a loader worker."""

import os

import pytest
from torch.utils.data import DataLoader

from bopnp.data.cache import TruncatedCacheError
from bopnp.data.crop_dataset import CropDataset
from bopnp.errors import DatasetError


def _truncate(path, keep_fraction=0.5):
    size = os.path.getsize(path)
    os.truncate(path, int(size * keep_fraction))


@pytest.mark.parametrize("array", ["rgb", "xyz", "mask"])
def test_truncated_while_mapped_names_the_file(tiny_cache, array):
    ds = CropDataset(tiny_cache, 1)
    ds[len(ds) - 1]  # every array of the last shard is mapped now
    path = ds.shards[-1].path / f"{array}.npy"
    _truncate(path)
    with pytest.raises(TruncatedCacheError, match=rf"{path}.* is truncated: \d+ bytes where its header announces"):
        ds[len(ds) - 1]
    assert issubclass(TruncatedCacheError, DatasetError)


def test_truncated_before_opening_names_the_file(tiny_cache):
    ds = CropDataset(tiny_cache, 2)
    path = ds.shards[0].path / "rgb.npy"
    _truncate(path, 0.9)
    with pytest.raises(TruncatedCacheError, match=str(path)):
        ds[0]


def test_a_loader_worker_reports_the_truncated_file(tiny_cache):
    ds = CropDataset(tiny_cache, 1)
    path = ds.shards[0].path / "xyz.npy"
    _truncate(path)
    loader = DataLoader(ds, batch_size=2, num_workers=1, multiprocessing_context="spawn")
    with pytest.raises(TruncatedCacheError, match=str(path)):
        next(iter(loader))


def test_a_loader_workers_error_reads_as_in_this_process(tiny_cache):
    """torch re-raises a worker's error as ``type(error)("Caught ... Original Traceback ...")``: the message is the
    worker's own again (what the CLI prints), the traceback is kept aside."""
    ds = CropDataset(tiny_cache, 1)
    path = ds.shards[0].path / "xyz.npy"
    _truncate(path)
    with pytest.raises(TruncatedCacheError) as here:
        ds[0]
    loader = DataLoader(CropDataset(tiny_cache, 1), batch_size=2, num_workers=1, multiprocessing_context="fork")
    with pytest.raises(TruncatedCacheError) as there:
        next(iter(loader))
    assert str(there.value) == str(here.value)
    assert "Traceback" not in str(there.value) and "Caught" not in str(there.value)
    assert "Original Traceback" in there.value.worker_traceback and here.value.worker_traceback is None
