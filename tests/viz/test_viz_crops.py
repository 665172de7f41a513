"""The crop-cache preview: its layout, its panels against the cache's arrays, and its errors."""

import shutil

import numpy as np
import pytest

from bopnp.errors import DatasetError
from bopnp.viz.colors import xyz_to_rgb
from bopnp.viz.crops import MASK_OCCLUDED, MASK_OFF, MASK_ON, OUTSIDE, crop_panels, crops_preview


@pytest.fixture(scope="module")
def prepared(synth_dataset, tmp_path_factory):
    """A copy of the synthetic dataset with its train_pbr crops prepared: the cache folder."""
    from bopnp.data.prepare import PrepareConfig, prepare

    bop_path, name = synth_dataset
    root = tmp_path_factory.mktemp("viz_crops")
    shutil.copytree(bop_path / name, root / name)
    summary = prepare(PrepareConfig(bop_path=root, name=name, workers=1, crop_size=64), progress=False)
    assert not summary.scenes_failed and sum(summary.crops.values()) > 0
    return summary.cache_dir


def test_panels_of_one_crop():
    S = 8
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
    xyz = rng.uniform(-1, 1, (S, S, 3)).astype(np.float32)
    full = np.zeros((S, S), bool)
    full[2:6, 2:7] = True
    visib = full.copy()
    visib[2:4] = False
    inside = np.ones((S, S), bool)
    inside[:, 7] = False
    block = crop_panels(rgb, xyz, full, visib, inside)
    assert block.shape == (2 * S + 2, 2 * S + 2, 3)
    top_left, top_right = block[:S, :S], block[:S, S + 2 :]
    bottom_left, bottom_right = block[S + 2 :, :S], block[S + 2 :, S + 2 :]
    np.testing.assert_array_equal(top_left, rgb)
    np.testing.assert_array_equal(top_right, xyz_to_rgb(xyz, full))
    assert np.all(bottom_left[full & inside] == MASK_ON) and np.all(bottom_left[~full & inside] == MASK_OFF)
    assert np.all(bottom_right[visib] == MASK_ON) and np.all(bottom_right[full & ~visib] == MASK_OCCLUDED)
    assert np.all(bottom_left[~inside] == OUTSIDE) and np.all(bottom_right[~inside] == OUTSIDE)


def test_preview_has_one_row_per_object_with_the_cached_crops(prepared):
    from bopnp.data.crop_dataset import open_crop_datasets

    datasets = open_crop_datasets(prepared)
    pic = crops_preview(prepared, per_object=3, panel=64)
    assert pic.dtype == np.uint8 and pic.ndim == 3
    block = 2 * 64 + 2
    assert pic.shape[0] > len(datasets) * block  # one row per object, under the legend
    # the image panel of the first crop of each object appears verbatim in the picture
    for ds in datasets.values():
        if len(ds):
            rgb = ds.raw(0)["rgb"]
            hits = np.argwhere(np.all(pic[:, :, :] == rgb[0, 0], axis=2))
            assert any(
                y + 64 <= pic.shape[0] and x + 64 <= pic.shape[1] and np.array_equal(pic[y : y + 64, x : x + 64], rgb)
                for y, x in hits[:5000]
            )


def test_preview_is_deterministic_and_scales_its_panels(prepared):
    a = crops_preview(prepared, per_object=2)
    b = crops_preview(prepared, per_object=2)
    np.testing.assert_array_equal(a, b)
    assert a.shape[1] > crops_preview(prepared, per_object=2, panel=64).shape[1]


def test_no_cache_says_to_run_prepare(tmp_path):
    with pytest.raises(DatasetError, match="bopnp prepare tiny"):
        crops_preview(tmp_path / "tiny" / "crops" / "train_pbr")
