"""Benchmark: latency of ``bopnp predict`` per image, split into reading the image, detection, cropping, the
network (both passes of the two-stage inference) and PnP with RANSAC.

Cases: ``lmo``, an LM-O-sized image (640 x 480) with 8 detections: the real photo of LM-O test image 3 and BOP's
default detections of it (one per target object), when the LM-O files are found (see bench/lmo_data.py), else
``random``, a random image with 8 boxes of LM-O's sizes (the first line of output then says so and what was
missing where); ``demo``, an image of a ``bopnp synth`` dataset with its GT boxes (with
``--demo BOP_PATH/NAME``, or ``datasets/demo`` when present). The network is the default pose network (width 32,
128 px crops, 8 output groups) untrained, or ``--pose RUN_OR_CKPT``. An untrained network predicts no confident
pixel, so PnP would have nothing to do: its output is replaced, after it ran and was timed, by a coordinate field
of a sphere with a low predicted error, which gives PnP the ``max_points`` correspondences per detection a trained
network gives it.

Rows: case x device x variant, milliseconds per image (median over ``--repeat`` runs after ``--warmup``) and the
speed of the total against the ``default`` variant of the same case, device and width (above 1: faster). Variants:
``default`` (two passes, float32 PnP, 1024 points); ``one-pass`` (no re-crop); ``pnp-f64``; ``512-points``; ``bf16``
(autocast, CUDA only); ``pnp-graph`` (PnP refinement replayed from CUDA graphs, ``PoseConfig.pnp_execution``, CUDA
only).

    python bench/predict.py                         # CPU (and CUDA when present)
    python bench/predict.py --threads 1 --repeat 10 --widths 16
    python bench/predict.py --pose results/train/lmo/pose --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from lmo_data import default_lmo_dir  # noqa: E402

from bopnp.bop.detections import Detection  # noqa: E402
from bopnp.infer.detect import ImageItem, select_detections  # noqa: E402
from bopnp.infer.pose import NetworkPredictor, PoseConfig, PoseEstimator  # noqa: E402

LMO_OBJECTS = [1, 5, 6, 8, 9, 10, 11, 12]
LMO_DETECTIONS = "detections/cosypose-maskrcnn-pbr_lmo-test.json"


@dataclass
class Case:
    """One image to predict: how to read it (timed), its intrinsics, the detection step (timed)."""

    name: str
    read: object  # () -> (H, W, 3) uint8
    K: np.ndarray
    detect: object  # (image) -> list[Detection]
    note: str
    obj_ids: list[int]


def _png_reader(image: np.ndarray):
    import cv2

    ok, data = cv2.imencode(".png", image[..., ::-1])
    assert ok
    buf = np.frombuffer(data.tobytes(), np.uint8)
    return lambda: np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def _synthetic_case(name: str, n: int, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    K = np.array([[572.4, 0, 325.3], [0, 573.6, 242.0], [0, 0, 1.0]])
    dets = []
    for k in range(n):
        w, h = rng.uniform(60, 160, 2)
        x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
        dets.append(Detection(0, 0, LMO_OBJECTS[k % len(LMO_OBJECTS)], 0.9, np.array([x, y, w, h]), None, -1.0))
    note = f"random 640x480 image, {n} random boxes"
    return Case(name, _png_reader(image), K, lambda im: list(dets), note, LMO_OBJECTS)


def lmo_missing(lmo_dir: Path) -> str | None:
    """What the ``lmo`` case needs and ``lmo_dir`` lacks, or None when it has the photo and the detections."""
    if not lmo_dir.is_dir():
        return f"no LM-O photo found at {lmo_dir}: no such folder"
    if not (lmo_dir / "test/000002/rgb").is_dir():
        return f"no LM-O photo found at {lmo_dir}: it has no test/000002/rgb"
    if not (lmo_dir / LMO_DETECTIONS).is_file():
        return f"no LM-O detections found at {lmo_dir}: it has no {LMO_DETECTIONS}"
    return None


def lmo_case(lmo_dir: Path) -> Case:
    """The LM-O photo and its detections, or, when ``lmo_dir`` lacks them, the ``random`` case saying so."""
    from bopnp.bop.dataset import BopDataset
    from bopnp.infer.detect import FileDetections

    missing = lmo_missing(lmo_dir)
    if missing is not None:
        case = _synthetic_case("random", 8, 0)
        case.note += f" ({missing}; pass --lmo DIR or set BOPNP_LMO_DIR)"
        return case
    ds = BopDataset(lmo_dir, "test")
    source = FileDetections(lmo_dir / LMO_DETECTIONS)
    wanted = {t.obj_id: t.inst_count for t in ds.targets() if (t.scene_id, t.im_id) == (2, 3)}
    path = ds.image_path(2, 3)
    from bopnp.bop.images import load_image

    def detect(image):
        # one per target object (object 10 has no detection in this image), then the next best of a target object
        dets = [d for d in source([ImageItem(2, 3)])[0] if d.obj_id in wanted]
        kept = select_detections(dets, wanted)
        rest = sorted((d for d in dets if not any(d is k for k in kept)), key=lambda d: -d.score)
        return kept + rest[: max(0, 8 - len(kept))]

    note = "LM-O test 2/3 (photo), BOP's default detections: the best of each target object + the next best"
    return Case("lmo", lambda: load_image(path), ds.K(2, 3), detect, note, LMO_OBJECTS)


def demo_case(demo: Path | None) -> Case | None:
    from bopnp.bop.dataset import BopDataset
    from bopnp.bop.images import load_image
    from bopnp.infer.detect import GtDetections

    if demo is None or not (demo / "test").is_dir():
        return None
    ds = BopDataset(demo, "test")
    scene = ds.scene_ids()[0]
    im = ds.image_ids(scene)[0]
    source = GtDetections(ds, masks=False)
    path = ds.image_path(scene, im)
    return Case(
        "demo", lambda: load_image(path), ds.K(scene, im), lambda image: source([ImageItem(scene, im)])[0],
        f"{demo.name} test {scene}/{im}, GT boxes", ds.obj_ids,
    )  # fmt: skip


class FieldPredictor:
    """Runs the network (timed by the estimator), then hands PnP a sphere's coordinate field with error 0.1."""

    def __init__(self, net, size: int):
        self.inner = NetworkPredictor(net)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        u, v = (xx - size / 2) / (size / 3), (yy - size / 2) / (size / 3)
        inside = u**2 + v**2 < 1
        xyz = np.stack([u, v, np.sqrt(np.clip(1 - u**2 - v**2, 0, 1))], 0) * 0.9 * inside
        self.xyz = torch.from_numpy(xyz)
        self.err = torch.from_numpy(np.where(inside, 0.1, 1.0).astype(np.float32))[None]

    def __call__(self, image, obj_index, ctx):
        xyz, err = self.inner(image, obj_index, ctx)
        B = xyz.shape[0]
        return self.xyz.to(xyz)[None].expand(B, -1, -1, -1), self.err.to(err)[None].expand(B, -1, -1, -1)


def build_estimator(args, device: torch.device, variant: str, obj_ids: list[int], width) -> PoseEstimator:
    from bopnp.models import build_coord_unet

    config = PoseConfig()
    if variant == "one-pass":
        config = replace(config, two_stage=False)
    elif variant == "pnp-f64":
        config = replace(config, pnp_float64=True)
    elif variant == "512-points":
        config = replace(config, max_points=512)
    elif variant == "pnp-graph":
        config = replace(config, pnp_execution="cuda_graph")
    norm = {o: (np.zeros(3), np.full(3, 50.0)) for o in obj_ids}
    if args.pose is not None:
        from bopnp.infer.network import load_pose_network

        network = load_pose_network(args.pose, device=device)
        predictor = NetworkPredictor(network.net, autocast=variant == "bf16")
        objs = network.obj_ids
        norm = {o: norm.get(o, (np.zeros(3), np.full(3, 50.0))) for o in objs}
        return PoseEstimator(predictor, objs, norm, network.crop_size, config, device)
    torch.manual_seed(0)
    net = build_coord_unet(num_objects=len(obj_ids), width=width, crop_size=args.crop, bottleneck=256)
    net = net.to(device).eval()
    predictor = FieldPredictor(net, args.crop)
    predictor.inner.autocast = variant == "bf16"
    return PoseEstimator(predictor, obj_ids, norm, args.crop, config, device)


def time_case(case: Case, est: PoseEstimator, repeat: int, warmup: int) -> dict[str, float]:
    parts: dict[str, list[float]] = {k: [] for k in ("read", "detect", "crop", "network", "pnp", "total")}
    n_dets = 0
    for i in range(warmup + repeat):
        est.times.reset()
        t0 = time.perf_counter()
        image = case.read()
        t1 = time.perf_counter()
        dets = [d for d in case.detect(image) if d.obj_id in est.obj_ids]
        t2 = time.perf_counter()
        est([image], [case.K], [dets])
        t3 = time.perf_counter()
        n_dets = len(dets)
        if i >= warmup:
            parts["read"].append(t1 - t0)
            parts["detect"].append(t2 - t1)
            parts["crop"].append(est.times.crop_s)
            parts["network"].append(est.times.network_s)
            parts["pnp"].append(est.times.pnp_s)
            parts["total"].append(t3 - t0)
    out = {k: statistics.median(v) * 1e3 for k, v in parts.items()}
    out["detections"] = n_dets
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all", help="all: CPU, and CUDA when present")
    p.add_argument("--pose", type=Path, default=None, help="a pose run folder or checkpoint instead of untrained")
    p.add_argument("--lmo", type=Path, default=None, help="LM-O folder [default: see bench/lmo_data.py]")
    p.add_argument("--demo", type=Path, default=None, help="a bopnp synth dataset folder [default: datasets/demo]")
    p.add_argument("--widths", type=int, nargs="+", default=[32, 16], help="network widths (untrained network)")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--variants", nargs="+", default=["default", "one-pass", "pnp-f64", "512-points", "bf16", "pnp-graph"]
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else ["cpu"]
    if args.device == "all" and torch.cuda.is_available():
        devices.append("cuda")
    lmo = args.lmo or default_lmo_dir()
    cases = [lmo_case(lmo), demo_case(args.demo or REPO / "datasets" / "demo")]
    cases = [c for c in cases if c is not None]
    for c in cases:  # first: which inputs the rows measured
        print(f"{c.name}: {c.note}")
    net = "untrained network + sphere field for PnP" if args.pose is None else f"network {args.pose}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {net}, {args.crop} px crops")
    cols = ["case", "device", "width", "variant", "detections", "read", "detect", "crop", "network", "PnP"]
    cols += ["total ms", "images/s", "x default"]
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    widths = args.widths if args.pose is None else ["ckpt"]
    for case in cases:
        for d in devices:
            device = torch.device(d)
            for width in widths:
                base = None
                for variant in args.variants:
                    if variant in ("bf16", "pnp-graph") and device.type != "cuda":
                        continue
                    est = build_estimator(args, device, variant, case.obj_ids, width)
                    r = time_case(case, est, args.repeat, args.warmup)
                    base = r["total"] if variant == "default" else base
                    ratio = f"{base / r['total']:.2f}" if base else "-"
                    print(
                        f"| {case.name} | {d} | {width} | {variant} | {r['detections']} | {r['read']:.0f} | "
                        f"{r['detect']:.0f} | {r['crop']:.0f} | {r['network']:.0f} | {r['pnp']:.0f} | "
                        f"{r['total']:.0f} | {1e3 / r['total']:.1f} | {ratio} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
