"""The pose stage on one image with everything it saw kept: what ``bopnp viz --debug`` draws.

Example:
    >>> image, K, results = estimate_image(ds, 2, 3, "results/train/lmo/pose", detections="gt")  # doctest: +SKIP
    >>> results[0].debug.inliers.sum(), results[0].valid                                          # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from bopnp.bop.dataset import BopDataset
from bopnp.errors import DatasetError
from bopnp.infer.detect import ImageItem, select_detections
from bopnp.infer.pose import PoseEstimator, PoseResult


def image_wanted(dataset: BopDataset, scene_id: int, im_id: int, obj_ids: list[int]) -> dict[int, int]:
    """obj_id -> instances to estimate in one image: its BOP19 targets when the dataset has them for the image,
    else its GT instances, else one of every object the network serves."""
    wanted: dict[int, int] = {}
    if dataset.targets_path.is_file():
        wanted = {t.obj_id: t.inst_count for t in dataset.targets() if (t.scene_id, t.im_id) == (scene_id, im_id)}
    if not wanted and dataset.has_gt(scene_id):
        counts: dict[int, int] = defaultdict(int)
        for g in dataset.scene_gt(scene_id).get(im_id, []):
            counts[g.obj_id] += 1
        wanted = dict(counts)
    if not wanted:
        wanted = {o: 1 for o in obj_ids}
    return {o: n for o, n in wanted.items() if o in obj_ids}


def estimate_image(
    dataset: BopDataset,
    scene_id: int,
    im_id: int,
    pose: str | os.PathLike,
    *,
    detections: str | os.PathLike | None = None,
    detector: str | os.PathLike | None = None,
    device: str = "auto",
) -> tuple[np.ndarray, np.ndarray, list[PoseResult]]:
    """Detect and estimate the poses in one image, keeping the crops, maps and PnP pixels of each detection.

    Args:
        dataset: the dataset on its split. scene_id, im_id: the image.
        pose: a pose run folder or checkpoint. detections / detector: as ``bopnp predict``'s.
        device: ``auto``, ``cpu`` or ``cuda``.
    Returns:
        the (H, W, 3) uint8 RGB image, its (3, 3) intrinsics, and one :class:`PoseResult` with ``debug`` per
        selected detection (per object as many as :func:`image_wanted` asks for).
    Raises:
        DatasetError: the image cannot be read; CheckpointError, ConfigError, ResultsFormatError as ``predict``.
    """
    from bopnp.bop.images import as_rgb
    from bopnp.infer.network import load_pose_network
    from bopnp.infer.predict import make_detection_source, resolve_device

    dev = resolve_device(device)
    if im_id not in dataset.scene_camera(scene_id):
        raise DatasetError(f"{dataset.scene_path(scene_id) / 'scene_camera.json'} has no image {im_id}")
    image = as_rgb(dataset.image(scene_id, im_id))
    K = dataset.K(scene_id, im_id)
    network = load_pose_network(pose, device=dev)
    source = make_detection_source(detections, detector, dataset, dev)
    (dets,) = source([ImageItem(scene_id, im_id, image if source.needs_pixels else None)])
    selected = select_detections(dets, image_wanted(dataset, scene_id, im_id, network.obj_ids))
    estimator = PoseEstimator.from_network(network, {o: dataset.mesh(o) for o in network.obj_ids})
    (results,) = estimator([image], [K], [selected], debug=True)
    return image, K, results


__all__ = ["estimate_image", "image_wanted"]
