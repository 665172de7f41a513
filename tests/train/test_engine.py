"""The engine's pieces the detector relies on: nested batches reach the device, evaluation gathers per-image
records, and a bad batch is described by its images."""

import torch

from bopnp.train.engine import describe_batch, evaluate, to_device


def test_to_device_reaches_tensors_inside_lists_and_dicts():
    batch = {"image": [torch.zeros(3, 2, 2)], "targets": [{"boxes": torch.zeros(0, 4)}], "name": "x"}
    moved = to_device(batch, torch.device("cpu"))
    assert isinstance(moved["image"], list) and isinstance(moved["targets"][0]["boxes"], torch.Tensor)
    assert moved["name"] == "x"


def test_evaluate_concatenates_tensors_and_gathers_records():
    net = torch.nn.Linear(2, 1)
    loader = [{"x": torch.ones(2, 2)}, {"x": torch.ones(3, 2)}]

    def predict(model, batch):
        y = model(batch["x"])[:, 0]
        return {"y": y, "records": [{"n": len(y)}] * len(y)}

    out = evaluate(net, loader, predict, device=torch.device("cpu"))
    assert out["y"].shape == (5,) and out["records"] == [{"n": 2}] * 2 + [{"n": 3}] * 3
    assert net.training  # the model's mode is given back


def test_describe_batch_names_crops_or_images():
    crops = {k: torch.tensor([1, 2]) for k in ("scene_id", "im_id", "gt_id", "obj_id")}
    assert describe_batch(crops) == "1/1/1 obj 1, 2/2/2 obj 2"
    images = {"image": [torch.zeros(1)] * 2, "scene_id": torch.tensor([0, 3]), "im_id": torch.tensor([5, 6])}
    assert describe_batch(images) == "image 0/5, image 3/6"
