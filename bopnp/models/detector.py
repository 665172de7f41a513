"""The detector: torchvision's Mask R-CNN, one class per object plus the background, on a backbone chosen by name.

Contract of the built model (torchvision's ``MaskRCNN``):

* input: a list of images, each (3, H, W) float32 RGB in [0, 1] (sizes may differ); the model normalises with the
  ImageNet mean and std and resizes the short side to ``min_size`` (the long side at most ``max_size``).
* training targets, one dict per image: ``boxes`` (N, 4) float32 x1y1x2y2 pixels, ``labels`` (N,) int64 in
  ``1 .. num_classes - 1`` (label = object index + 1; 0 is the background), ``masks`` (N, H, W) uint8 in {0, 1}.
  N may be 0: an image without objects trains the background.
* training output: a dict of scalar losses (``loss_classifier``, ``loss_box_reg``, ``loss_mask``,
  ``loss_objectness``, ``loss_rpn_box_reg``).
* eval output, one dict per image: ``boxes`` (D, 4) x1y1x2y2 in the input image's pixels, ``labels`` (D,),
  ``scores`` (D,) in [0, 1], ``masks`` (D, 1, H, W) float probabilities.

Backbones (:data:`BACKBONES`): ``resnet50_fpn_v2`` as ``maskrcnn_resnet50_fpn_v2`` (the default for real datasets)
and two light ones that train on a laptop CPU in minutes: ``resnet18_fpn`` and ``mobilenet_v3_large_fpn``, built
with torchvision's backbone utilities. Pretrained weights (``backbone_weights``) are ``imagenet`` (torchvision's
ImageNet network of the trunk), ``coco`` (torchvision's COCO detector: ``maskrcnn_resnet50_fpn_v2``, or
``fasterrcnn_mobilenet_v3_large_fpn`` for the MobileNet backbone), both from torch's hub cache and downloaded there
when online (:mod:`bopnp.models.weights`), or a local file. Without them, ``hub_cache=True`` uses the file
torchvision would have downloaded when torch's hub cache already holds it (:func:`cached_weights`; never
downloads); otherwise the network starts from scratch and ``model.init_source`` says so.

Example:
    >>> import torch
    >>> net = build_maskrcnn(num_classes=3, backbone="resnet18_fpn", min_size=64, max_size=96).eval()
    >>> with torch.no_grad():
    ...     out = net([torch.rand(3, 48, 64)])
    >>> sorted(out[0]), net.init_source
    (['boxes', 'labels', 'masks', 'scores'], 'scratch')
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bopnp.errors import CheckpointError, ConfigError, ShapeError
from bopnp.models.weights import WEIGHT_KINDS, read_state_dict, weights_file

log = logging.getLogger(__name__)

#: backbone names the builder knows
BACKBONES = ("resnet50_fpn_v2", "resnet18_fpn", "mobilenet_v3_large_fpn")


@dataclass(frozen=True)
class DetectorSpec:
    """Everything that shapes the network (stored in checkpoints, so inference rebuilds the same one).

    Attributes:
        num_classes: objects + 1 (the background).
        backbone: one of :data:`BACKBONES`.
        min_size, max_size: the model resizes the short image side to ``min_size``, the long one to at most
            ``max_size`` (BOP images are 640x480: 480 / 640 keeps them as they are). A tuple of sizes for
            ``min_size`` is not offered: scale jitter belongs to the data augmentation.
        fpn_channels: channels of the feature pyramid (torchvision: 256).
        returned_layers: backbone stages the pyramid is built on (None: resnet 1-4, mobilenet its last two);
            leaving out the first resnet stage (stride 4) makes the RPN and the pyramid much cheaper, leaving out the
            last (stride 32) skips computing it (the pyramid's pooled level still covers large objects).
        smallest_anchor: anchor side, pixels of the resized image, on the finest pyramid level; it doubles per
            level (torchvision: 32 on stride 4). With fewer than four levels each level has two sizes, ``a * 4**i``
            and twice that.
        rpn_pre_nms_top_n_train, rpn_post_nms_top_n_train, rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test:
            proposals kept before NMS (per level) and after it (per image), training and test.
        rpn_batch_size_per_image: anchors sampled per image for the RPN loss.
        box_batch_size_per_image, box_positive_fraction: proposals sampled per image for the box and mask heads,
            and the largest share of them that may be positive (torchvision: 512, a quarter).
        box_detections_per_img, box_score_thresh: at most this many detections per image scoring at least this.
        box_head_dim: width of the box head's fully connected layers (torchvision: 1024).
        mask_head_layers, mask_head_channels: the mask head's 3x3 convolutions (torchvision: 4 of 256).
        frozen_bn: frozen batch norm in the backbone (pretrained light backbones, as torchvision's recipe).
        trainable_layers: backbone stages trained, counted from the last (None: all).
    """

    num_classes: int
    backbone: str = "resnet50_fpn_v2"
    min_size: int = 480
    max_size: int = 640
    fpn_channels: int = 256
    returned_layers: tuple[int, ...] | None = None
    smallest_anchor: int = 32
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    box_detections_per_img: int = 100
    box_score_thresh: float = 0.05
    box_head_dim: int = 1024
    mask_head_layers: int = 4
    mask_head_channels: int = 256
    frozen_bn: bool = False
    trainable_layers: int | None = None

    def validate(self) -> DetectorSpec:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(self.num_classes >= 2, f"num_classes must be at least 2 (one object + background), got {self.num_classes}")
        need(self.backbone in BACKBONES, f"unknown backbone {self.backbone!r}: choose one of {', '.join(BACKBONES)}")
        need(
            32 <= self.min_size <= self.max_size,
            f"min_size must be >= 32 and <= max_size, got {self.min_size} and {self.max_size}",
        )
        for name in (
            "fpn_channels",
            "smallest_anchor",
            "rpn_pre_nms_top_n_train",
            "rpn_post_nms_top_n_train",
            "rpn_pre_nms_top_n_test",
            "rpn_post_nms_top_n_test",
            "rpn_batch_size_per_image",
            "box_batch_size_per_image",
            "box_detections_per_img",
            "box_head_dim",
            "mask_head_layers",
            "mask_head_channels",
        ):
            need(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        need(
            0 < self.box_positive_fraction <= 1,
            f"box_positive_fraction must be in (0, 1], got {self.box_positive_fraction}",
        )
        need(0 <= self.box_score_thresh < 1, f"box_score_thresh must be in [0, 1), got {self.box_score_thresh}")
        if self.returned_layers is not None:
            top = 4 if self.backbone.startswith("resnet") else 5
            layers = tuple(self.returned_layers)
            need(
                len(layers) >= 1 and list(layers) == sorted(set(layers)) and 1 <= layers[0] and layers[-1] <= top,
                f"returned_layers must be increasing stage numbers in 1..{top}, got {self.returned_layers}",
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorSpec:
        data = dict(data)
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise CheckpointError(f"unknown detector settings {unknown}: the checkpoint comes from another bopnp")
        if isinstance(data.get("returned_layers"), list):
            data["returned_layers"] = tuple(data["returned_layers"])
        return cls(**data)


# -- pretrained weights ------------------------------------------------------------------------------------------


def _weight_enums(backbone: str) -> list:
    """torchvision's weight enums whose files can start ``backbone``: the whole detector first, then the trunk."""
    from torchvision.models import MobileNet_V3_Large_Weights, ResNet18_Weights, ResNet50_Weights
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights

    return {
        "resnet50_fpn_v2": [*MaskRCNN_ResNet50_FPN_V2_Weights, *ResNet50_Weights],
        "resnet18_fpn": [*ResNet18_Weights],
        "mobilenet_v3_large_fpn": [*MobileNet_V3_Large_Weights],
    }[backbone]


def cached_weights(backbone: str) -> Path | None:
    """The pretrained file for ``backbone`` that torch's hub cache already holds (``$TORCH_HOME/hub/checkpoints``),
    or None. Nothing is downloaded: only the file names torchvision would download to are looked up."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for weights in _weight_enums(backbone):
        path = folder / os.path.basename(weights.url)
        if path.is_file():
            return path
    return None


#: backbone -> weights kind -> the torchvision architecture whose published weights start it
PRETRAINED_ARCH = {
    "resnet50_fpn_v2": {"imagenet": "resnet50", "coco": "maskrcnn_resnet50_fpn_v2"},
    "resnet18_fpn": {"imagenet": "resnet18"},
    "mobilenet_v3_large_fpn": {"imagenet": "mobilenet_v3_large", "coco": "fasterrcnn_mobilenet_v3_large_fpn"},
}


def pretrained_file(spec: str | os.PathLike, backbone: str, *, download: bool = True) -> Path:
    """The weights file of ``--backbone-weights imagenet|coco|FILE`` for ``backbone`` (see
    :func:`bopnp.models.weights.weights_file`).

    Raises:
        ConfigError: ``coco`` for a backbone torchvision has no COCO detector of; a file not found; published
        weights neither in torch's hub cache nor downloadable (naming the file and the folder).
    """
    if str(spec) in WEIGHT_KINDS:
        kinds = PRETRAINED_ARCH[backbone]
        if str(spec) not in kinds:
            raise ConfigError(
                f"--backbone-weights {spec}: torchvision has no {spec} detector with a {backbone} backbone; use "
                f"--backbone-weights {' or '.join(kinds)}, or the resnet50_fpn_v2 backbone (--preset full)"
            )
        return weights_file(str(spec), kinds[str(spec)], download=download)
    return weights_file(spec, backbone)


def load_pretrained(model: nn.Module, path: str | os.PathLike, backbone: str) -> int:
    """Load pretrained weights into ``model`` from ``path``: an ImageNet classification network's state dict (the
    trunk gets it) or a whole detector's (everything of matching shape: the class-specific predictors of a COCO
    detector are left as they are).

    Returns:
        the number of tensors loaded.
    Raises:
        ConfigError: the file is unreadable or fits less than 90 % of the part it is meant for.
    """
    path = Path(path)
    state = read_state_dict(path)
    own = model.state_dict()
    if any(k.startswith("backbone.") for k in state):  # a whole detector
        target_keys = [k for k in own if k.startswith("backbone.")]
        mapped = dict(state)
    else:  # a classification network: its trunk
        prefix = "features." if backbone.startswith("mobilenet") else ""
        mapped = {f"backbone.body.{k[len(prefix) :]}": v for k, v in state.items() if k.startswith(prefix)}
        target_keys = [k for k in own if k.startswith("backbone.body.")]
    fits = {k: v for k, v in mapped.items() if k in own and own[k].shape == v.shape}
    covered = sum(1 for k in target_keys if k in fits)
    if not target_keys or covered < 0.9 * len(target_keys):
        raise ConfigError(
            f"{path}: fits only {covered} of the {len(target_keys)} tensors of a {backbone} backbone; pass the "
            f"weights of that torchvision network (e.g. from {os.path.basename(_weight_enums(backbone)[0].url)})"
        )
    model.load_state_dict(fits, strict=False)
    return len(fits)


# -- the network -------------------------------------------------------------------------------------------------


def _backbone(spec: DetectorSpec) -> tuple[nn.Module, int]:
    """(backbone with FPN, number of pyramid levels from feature maps)."""
    from torchvision.models import mobilenet_v3_large, resnet18, resnet50
    from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
    from torchvision.ops import misc as misc_nn_ops

    norm = misc_nn_ops.FrozenBatchNorm2d if spec.frozen_bn else nn.BatchNorm2d
    if spec.backbone.startswith("resnet"):
        trunk = (resnet50 if spec.backbone == "resnet50_fpn_v2" else resnet18)(weights=None, norm_layer=norm)
        layers = list(spec.returned_layers or (1, 2, 3, 4))
        trainable = 5 if spec.trainable_layers is None else spec.trainable_layers
        fpn_norm = nn.BatchNorm2d if spec.backbone == "resnet50_fpn_v2" else None
        body = _resnet_fpn_extractor(trunk, trainable, layers, norm_layer=fpn_norm)
        return _with_fpn_channels(body, spec.fpn_channels, fpn_norm), len(layers)
    trunk = mobilenet_v3_large(weights=None, norm_layer=norm)
    stages = 6  # the strided blocks of MobileNetV3-Large's features, plus its first and last
    layers = [x - 1 for x in (spec.returned_layers or (stages - 1, stages))]
    trainable = stages if spec.trainable_layers is None else spec.trainable_layers
    body = _mobilenet_extractor(trunk, True, trainable, layers)
    return _with_fpn_channels(body, spec.fpn_channels, None), len(layers)


def _with_fpn_channels(body: nn.Module, channels: int, norm) -> nn.Module:
    """The extractor's FPN rebuilt with ``channels`` outputs (torchvision fixes 256)."""
    if channels == body.out_channels:
        return body
    from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

    in_channels = [m.in_channels for m in body.fpn.inner_blocks.modules() if isinstance(m, nn.Conv2d)]
    body.fpn = FeaturePyramidNetwork(in_channels, channels, extra_blocks=LastLevelMaxPool(), norm_layer=norm)
    body.out_channels = channels
    return body


def build_from_spec(spec: DetectorSpec) -> nn.Module:
    """The Mask R-CNN of ``spec`` with freshly initialised weights (see the module docstring for its contract)."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNN, MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.models.detection.rpn import RPNHead
    from torchvision.ops import MultiScaleRoIAlign

    spec.validate()
    backbone, n_maps = _backbone(spec)
    C = backbone.out_channels
    a = spec.smallest_anchor
    if n_maps + 1 < 4:  # few levels (MobileNet, or a ResNet without its last stages): two anchor sizes each
        sizes = tuple((a * 4**i, a * 2 * 4**i) for i in range(n_maps + 1))
    else:
        sizes = tuple((a * 2**i,) for i in range(n_maps + 1))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    v2 = spec.backbone == "resnet50_fpn_v2"
    rpn_head = RPNHead(C, anchors.num_anchors_per_location()[0], conv_depth=2 if v2 else 1)
    if v2:
        box_head = FastRCNNConvFCHead((C, 7, 7), [C] * 4, [spec.box_head_dim], norm_layer=nn.BatchNorm2d)
    else:
        box_head = TwoMLPHead(C * 7 * 7, spec.box_head_dim)
    names = [str(i) for i in range(n_maps)]
    M = spec.mask_head_channels
    mask_head = MaskRCNNHeads(C, [M] * spec.mask_head_layers, 1, norm_layer=nn.BatchNorm2d if v2 else None)
    model = MaskRCNN(
        backbone,
        min_size=spec.min_size,
        max_size=spec.max_size,
        rpn_anchor_generator=anchors,
        rpn_head=rpn_head,
        rpn_pre_nms_top_n_train=spec.rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=spec.rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=spec.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=spec.rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=spec.rpn_batch_size_per_image,
        box_roi_pool=MultiScaleRoIAlign(names, 7, 2),
        box_head=box_head,
        box_predictor=FastRCNNPredictor(spec.box_head_dim, spec.num_classes),
        box_batch_size_per_image=spec.box_batch_size_per_image,
        box_positive_fraction=spec.box_positive_fraction,
        box_detections_per_img=spec.box_detections_per_img,
        box_score_thresh=spec.box_score_thresh,
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
        mask_head=mask_head,
        mask_predictor=MaskRCNNPredictor(M, M, spec.num_classes),
    )
    model.spec = spec
    model.init_source = "scratch"
    return model


def build_maskrcnn(
    *,
    num_classes: int,
    backbone: str = "resnet50_fpn_v2",
    min_size: int = 480,
    max_size: int = 640,
    backbone_weights: str | os.PathLike | None = None,
    hub_cache: bool = False,
    **knobs: Any,
) -> nn.Module:
    """A torchvision Mask R-CNN for ``num_classes - 1`` objects (see the module docstring for its contract).

    Args:
        num_classes: objects + 1; the label of object ``obj_ids[k]`` is ``k + 1``.
        backbone: one of :data:`BACKBONES`.
        min_size, max_size: input resizing (short side, long side at most), pixels.
        backbone_weights: ``imagenet``, ``coco`` (torchvision's weights, from torch's hub cache, downloaded there
            when online; :func:`pretrained_file`) or a local file of pretrained weights (an ImageNet network of the
            backbone or a whole torchvision detector); see :func:`load_pretrained`.
        hub_cache: without ``backbone_weights``, use the file torchvision would download when torch's hub cache
            already holds it (never downloads).
        knobs: the other :class:`DetectorSpec` fields (proposal counts, RoI samples, head widths, ...).
    Returns:
        the model; ``model.spec`` is its :class:`DetectorSpec`, ``model.init_source`` is ``"scratch"`` or the
        weights file it started from.
    Raises:
        ConfigError: unknown backbone or knob, bad values, unusable weights file.
    """
    known = {f.name for f in dataclasses.fields(DetectorSpec)} - {"num_classes", "backbone", "min_size", "max_size"}
    unknown = sorted(set(knobs) - known)
    if unknown:
        raise ConfigError(f"unknown detector settings {unknown}; known: {', '.join(sorted(known))}")
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")
    path = pretrained_file(backbone_weights, backbone) if backbone_weights is not None else None
    if path is None and hub_cache and backbone in BACKBONES:
        path = cached_weights(backbone)
    if path is not None and backbone != "resnet50_fpn_v2":
        # torchvision's recipe for a pretrained light backbone: frozen batch norm, the last three stages trained
        knobs = {"frozen_bn": True, "trainable_layers": 3, **knobs}
    elif path is not None:
        knobs = {"trainable_layers": 3, **knobs}
    spec = DetectorSpec(num_classes=num_classes, backbone=backbone, min_size=min_size, max_size=max_size, **knobs)
    model = build_from_spec(spec)
    if path is not None:
        load_pretrained(model, path, backbone)
        model.init_source = str(path)
    return model


def check_detection_inputs(images: list[Tensor], targets: list[dict[str, Tensor]] | None, num_classes: int) -> None:
    """Check a batch against the contract (cheap: shapes, dtypes, value ranges).

    Raises:
        ShapeError: naming the image and field that breaks it.
    """
    for i, im in enumerate(images):
        if im.dim() != 3 or im.shape[0] != 3 or not im.is_floating_point():
            raise ShapeError(f"image {i}: expected (3, H, W) float RGB, got {tuple(im.shape)} {im.dtype}")
        if im.numel() and (float(im.min()) < 0 or float(im.max()) > 1):
            raise ShapeError(f"image {i}: values must lie in [0, 1] (divide 8-bit images by 255)")
    for i, t in enumerate(targets or []):
        n = len(t["labels"])
        H, W = images[i].shape[-2:]
        if t["boxes"].shape != (n, 4):
            raise ShapeError(f"target {i}: boxes must be ({n}, 4) x1y1x2y2, got {tuple(t['boxes'].shape)}")
        if n and ((t["boxes"][:, 2:] <= t["boxes"][:, :2]).any()):
            raise ShapeError(f"target {i}: boxes must have x2 > x1 and y2 > y1 (x1y1x2y2, not xywh)")
        if n and (int(t["labels"].min()) < 1 or int(t["labels"].max()) >= num_classes):
            raise ShapeError(f"target {i}: labels must lie in 1..{num_classes - 1} (object index + 1)")
        if "masks" in t and (t["masks"].shape != (n, H, W) or t["masks"].dtype != torch.uint8):
            raise ShapeError(
                f"target {i}: masks must be ({n}, {H}, {W}) uint8, got {tuple(t['masks'].shape)} {t['masks'].dtype}"
            )


__all__ = [
    "BACKBONES",
    "DetectorSpec",
    "build_from_spec",
    "build_maskrcnn",
    "cached_weights",
    "check_detection_inputs",
    "load_pretrained",
    "pretrained_file",
]
