"""Shared fixtures and markers.

Markers: ``gpu`` (skipped without CUDA), ``slow``, ``shared_data`` (needs the real LM-O files that sit
beside a development checkout in ``../shared/data/lmo``, or in ``$BOPNP_LMO_DIR``; skipped when absent).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS = REPO_ROOT / "tests"


def _shared_lmo_dir() -> Path:
    return Path(os.environ.get("BOPNP_LMO_DIR", REPO_ROOT.parent / "shared" / "data" / "lmo"))


def pytest_collection_modifyitems(config, items):
    import torch

    has_cuda = torch.cuda.is_available()
    has_lmo = (_shared_lmo_dir() / "models" / "models_info.json").is_file()
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
        if "shared_data" in item.keywords and not has_lmo:
            item.add_marker(pytest.mark.skip(reason=f"real LM-O files not found at {_shared_lmo_dir()}"))


@pytest.fixture(scope="session")
def lmo_dir() -> Path:
    """Folder of the real (partial) LM-O dataset in BOP layout; tests using it carry the shared_data marker."""
    path = _shared_lmo_dir()
    if not (path / "models" / "models_info.json").is_file():
        pytest.skip(f"real LM-O files not found at {path}")
    return path


def _devices() -> list[str]:
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=_devices())
def device(request) -> str:
    """Every available device: cpu, and cuda when present."""
    return request.param


#: the tiny synthetic dataset of the ``synth_dataset`` fixture: 6 train_pbr images in two scenes (4 + 2),
#: 3 test images in one scene, the six procedural objects, seed 0
SYNTH_TINY = {"train_images": 6, "test_images": 3, "images_per_scene": 4, "seed": 0}


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> tuple[Path, str]:
    """A tiny synthetic BOP dataset made once per test session: ``(bop_path, name)``.

    Holds models/ (+ models_info.json with symmetries), models_eval/, camera.json, train_pbr/ (scenes
    000000 with 4 images and 000001 with 2), test/000000 (3 images) and test_targets_bop19.json; see
    ``SYNTH_TINY``. Treat it as read-only: other tests share it. Skipped when the renderer cannot start.
    """
    from bopnp.errors import RenderError
    from bopnp.synth.generator import SynthConfig, synthesize

    bop_path = tmp_path_factory.mktemp("synth_bop")
    try:
        synthesize(SynthConfig(name="tiny", bop_path=bop_path, workers=1, progress=False, **SYNTH_TINY))
    except RenderError as exc:
        pytest.skip(f"cannot render the synthetic dataset: {exc}")
    return bop_path, "tiny"


def _test_module(path: Path, name: str):
    """A helper file of the tests loaded by path (test folders are not packages), once, as ``name``: the
    name a test module that imports it by name (``from tiny_bop import ...``) gets the same module under."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def mesh_shapes():
    """tests/geometry/mesh_shapes.py: procedural meshes (box, cylinder, cone, icosphere, ...) with known symmetry
    groups, as test_mesh_symmetry loads it."""
    return _test_module(TESTS / "geometry" / "mesh_shapes.py", "geometry_mesh_shapes")


@pytest.fixture(scope="session")
def pose_helpers():
    """tests/infer/pose_helpers.py: the oracle coordinate network and an untrained checkpoint writer."""
    return _test_module(TESTS / "infer" / "pose_helpers.py", "infer_pose_helpers")


@pytest.fixture(scope="session")
def tiny():
    """The BOP-layout builder tests/fixtures/bop/tiny_dataset.py (make_dataset, break_dataset, box_mesh,
    revolution_mesh, ...): drawn masks, no rendering; each test makes its own dataset with it."""
    return _test_module(TESTS / "fixtures" / "bop" / "tiny_dataset.py", "bop_tiny_dataset")


@pytest.fixture(scope="session")
def tiny_bop_template(tmp_path_factory) -> Path:
    """The rendered dataset of tests/data/tiny_bop.py (independent of ``bopnp synth``), built once per
    session; read-only: tests that write into it take a copy, ``tiny_bop``."""
    root = tmp_path_factory.mktemp("tiny_bop")
    _test_module(TESTS / "data" / "tiny_bop.py", "tiny_bop").build(root)
    return root


@pytest.fixture
def tiny_bop(tiny_bop_template, tmp_path) -> tuple[Path, str]:
    """(bop_path, name) of a fresh copy of the tiny_bop dataset (``prepare`` writes into the dataset)."""
    shutil.copytree(tiny_bop_template, tmp_path / "bop")
    return tmp_path / "bop", "tiny"


@pytest.fixture(scope="session")
def lmo_image3(lmo_dir):
    """LM-O test scene 2 image 3, the real photo with a depth image: K, GT instances ``(obj_id, R_m2c,
    t_m2c)``, depth in mm, and a renderer of the image's size holding the GT objects' models."""
    from types import SimpleNamespace

    from bopnp.bop.io import load_depth, load_ply, load_scene_camera, load_scene_gt
    from bopnp.render import get_renderer

    scene = lmo_dir / "test" / "000002"
    gts = load_scene_gt(scene / "scene_gt.json")[3]
    cam = load_scene_camera(scene / "scene_camera.json")[3]
    depth_mm = load_depth(scene / "depth" / "000003.png", cam.depth_scale or 1.0)
    renderer = get_renderer(depth_mm.shape[1], depth_mm.shape[0])
    for gt in gts:
        renderer.add_model(gt.obj_id, load_ply(lmo_dir / "models" / f"obj_{gt.obj_id:06d}.ply"))
    instances = [(g.obj_id, g.R_m2c, g.t_m2c) for g in gts]
    return SimpleNamespace(K=cam.K, gts=gts, instances=instances, depth_mm=depth_mm, renderer=renderer)


@pytest.fixture(scope="session")
def tiny_cache_module():
    """The crop-cache builder tests/fixtures/data/tiny_cache.py (make_tiny_cache: discs, no rendering)."""
    return _test_module(TESTS / "fixtures" / "data" / "tiny_cache.py", "data_tiny_cache")


@pytest.fixture
def tiny_train_dataset(tiny_cache_module, tmp_path) -> tuple[Path, str]:
    """(bop_path, name) of a dataset with sphere models and the tiny crop cache in crops/train_pbr."""
    tiny_cache_module.make_tiny_dataset(tmp_path / "bop", "tiny")
    return tmp_path / "bop", "tiny"


@pytest.fixture
def tiny_cache(tiny_cache_module, tmp_path) -> Path:
    """A crop cache of two objects (6 crops each, 32 px, object 2 with a 180 deg symmetry) in a temporary folder."""
    return tiny_cache_module.make_tiny_cache(tmp_path / "crops")
