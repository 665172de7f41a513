"""Pretrained weights for the networks' trunks: a spec (``imagenet``, ``coco`` or a file) and a torchvision
architecture in, a state dict (or a clear error) out.

``imagenet`` and ``coco`` mean torchvision's published weights of the architecture (:data:`TORCHVISION_WEIGHTS`).
They are read from torch's hub cache (``$TORCH_HOME/hub/checkpoints``, where torchvision itself keeps them) and,
when the file is not there, downloaded there once (unless ``download=False`` or ``BOPNP_OFFLINE=1``). Offline and
without the file, the error names the exact file, where to get it and the folder to put it in. A file spec is read
as it is (a state dict, or a training checkpoint's ``model``).

Example:
    >>> state = load_weights("imagenet", "resnet18")                          # doctest: +SKIP
    >>> weights_file("coco", "maskrcnn_resnet50_fpn_v2").name                 # doctest: +SKIP
    'maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import Tensor

from bopnp.errors import ConfigError

#: the kinds of published weights a spec may name
WEIGHT_KINDS = ("imagenet", "coco")
#: architecture -> kind -> torchvision weight enum (``Enum.MEMBER``)
TORCHVISION_WEIGHTS: dict[str, dict[str, str]] = {
    "resnet18": {"imagenet": "ResNet18_Weights.IMAGENET1K_V1"},
    "resnet34": {"imagenet": "ResNet34_Weights.IMAGENET1K_V1"},
    "resnet50": {"imagenet": "ResNet50_Weights.IMAGENET1K_V1"},
    "mobilenet_v3_large": {"imagenet": "MobileNet_V3_Large_Weights.IMAGENET1K_V1"},
    "maskrcnn_resnet50_fpn_v2": {"coco": "MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1"},
    "fasterrcnn_mobilenet_v3_large_fpn": {"coco": "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1"},
}
#: the environment variable that forbids downloads (``1``)
OFFLINE_ENV = "BOPNP_OFFLINE"


def hub_folder() -> Path:
    """Torch's hub cache of weight files (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_url(kind: str, arch: str) -> str:
    """The URL torchvision downloads ``arch``'s ``kind`` weights from.

    Raises:
        ConfigError: an architecture or kind torchvision does not publish, listing those it does.
    """
    if arch not in TORCHVISION_WEIGHTS:
        raise ConfigError(f"no published weights known for architecture {arch!r}; known: {sorted(TORCHVISION_WEIGHTS)}")
    kinds = TORCHVISION_WEIGHTS[arch]
    if kind not in kinds:
        raise ConfigError(
            f"torchvision publishes no {kind} weights for {arch} (it has: {', '.join(kinds)}); pass one of those or "
            "a weights file"
        )
    import torchvision.models as tvm
    import torchvision.models.detection as tvd

    enum_name, member = kinds[kind].split(".")
    enum = getattr(tvm, enum_name, None) or getattr(tvd, enum_name)
    return getattr(enum, member).url


def _download(url: str, dst: Path) -> None:
    """Download ``url`` to ``dst`` (atomically, checking the hash prefix torchvision puts in its file names)."""
    m = re.search(r"-([a-f0-9]{6,})\.", os.path.basename(url))
    torch.hub.download_url_to_file(url, str(dst), hash_prefix=m.group(1) if m else None, progress=False)


def weights_file(spec: str | os.PathLike, arch: str, *, download: bool = True) -> Path:
    """The file of a weights spec.

    Args:
        spec: ``imagenet``, ``coco`` (torchvision's weights of ``arch``) or the path of a file.
        arch: the torchvision architecture (a key of :data:`TORCHVISION_WEIGHTS`).
        download: fetch torchvision's file into the hub cache when it is not there (never with ``BOPNP_OFFLINE=1``).
    Raises:
        ConfigError: a missing file; published weights neither cached nor downloadable (naming the file, its URL
        and the folder to put it in).
    """
    if str(spec) not in WEIGHT_KINDS:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(
                f"--backbone-weights {spec}: no such file; pass {' or '.join(WEIGHT_KINDS)} (torchvision's weights) or "
                "a .pth file"
            )
        return path
    url = torchvision_url(str(spec), arch)
    folder = hub_folder()
    path = folder / os.path.basename(url)
    if path.is_file():
        return path
    offline = os.environ.get(OFFLINE_ENV, "") not in ("", "0")
    why = "downloads are off (BOPNP_OFFLINE=1)" if offline else "downloads are off"
    if download and not offline:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _download(url, path)
            return path
        except Exception as exc:  # URLError, timeouts, a hash mismatch: all mean "not here"
            why = f"the download failed: {type(exc).__name__}: {str(exc)[:200]}"
    raise ConfigError(
        f"--backbone-weights {spec}: torchvision's {spec} weights of {arch} are not in torch's hub cache and {why}. "
        f"Put the file {path.name} (from {url}) in {folder}, or pass the path of a weights file"
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The state dict of a weights file (a training checkpoint's ``model`` entry is taken).

    Raises:
        ConfigError: missing, unreadable, or not a dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--backbone-weights {path}: no such file; pass a torchvision .pth file of the backbone")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a foreign or truncated file
        raise ConfigError(f"{path}: not a readable weights file ({type(exc).__name__}: {str(exc)[:200]})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # a training checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConfigError(f"{path}: not a state dict of tensors")
    return state


def load_weights(spec: str | os.PathLike, arch: str, *, download: bool = True) -> dict[str, Tensor]:
    """The state dict a weights spec means for ``arch`` (see :func:`weights_file`)."""
    return read_state_dict(weights_file(spec, arch, download=download))


__all__ = [
    "OFFLINE_ENV",
    "TORCHVISION_WEIGHTS",
    "WEIGHT_KINDS",
    "hub_folder",
    "load_weights",
    "read_state_dict",
    "torchvision_url",
    "weights_file",
]
