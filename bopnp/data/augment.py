"""Training augmentations for Pix2Pose crops, with ``torchvision.transforms.v2``.

Two kinds of hook, both optional arguments of :class:`bopnp.data.crop_dataset.CropDataset`:

* an *image transform* changes only the RGB input, never the targets: colour jitter, blur, noise and
  random erasing (a cheap occlusion: the target keeps the full object's coordinates, as Pix2Pose wants).
  :func:`color_augment` builds the default one; any callable ``(3, S, S) float [0, 1] -> same`` works.
* a *box jitter* (:class:`BoxJitter`) re-crops image, coordinates and masks together (image bilinear,
  coordinates and masks nearest) from a randomly shifted and scaled box and updates ``K`` and the box,
  simulating the detector's box errors as Pix2Pose trains with jittered boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bopnp.errors import ConfigError


def color_augment(
    brightness: float = 0.3,
    contrast: float = 0.3,
    saturation: float = 0.3,
    hue: float = 0.03,
    blur_p: float = 0.2,
    noise_std: float = 0.02,
    erase_p: float = 0.3,
):
    """The default image-only augmentation.

    Args:
        brightness, contrast, saturation, hue: ``v2.ColorJitter`` ranges.
        blur_p: probability of a Gaussian blur (kernel 5, sigma 0.1 .. 1.5).
        noise_std: standard deviation of additive Gaussian noise (0 disables it).
        erase_p: probability of erasing a random rectangle (2 .. 20 % of the crop).
    Returns:
        a callable mapping a (3, S, S) float32 image in [0, 1] to an augmented one, same shape.
    """
    from torchvision.transforms import v2

    steps = [
        v2.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue),
        v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.5))], p=blur_p),
    ]
    if noise_std > 0:
        steps.append(v2.GaussianNoise(mean=0.0, sigma=noise_std, clip=True))
    if erase_p > 0:
        steps.append(v2.RandomErasing(p=erase_p, scale=(0.02, 0.2), value=0))
    return v2.Compose(steps)


@dataclass(frozen=True)
class BoxJitter:
    """Random re-crop of a stored crop: the box centre moves by up to ``max_shift`` of the side (each axis,
    uniform) and the side is scaled by a factor in ``scale_range`` (uniform).

    Attributes:
        max_shift: largest centre shift, fraction of the crop side.
        scale_range: (low, high) side scale factors; > 1 zooms out (the border beyond the stored crop is zero).
    """

    max_shift: float = 0.1
    scale_range: tuple[float, float] = (0.85, 1.15)

    def validate(self) -> None:
        if not 0 <= self.max_shift < 0.5:
            raise ConfigError(f"BoxJitter.max_shift must be in [0, 0.5), got {self.max_shift}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ConfigError(f"BoxJitter.scale_range must be 0 < low <= high, got {self.scale_range}")

    def sample_box(self, size: int, generator: torch.Generator | None = None) -> np.ndarray:
        """A jittered box in pixels of a ``size x size`` crop.

        Returns:
            (4,) float64 ``(x1, y1, x2, y2)``.
        """
        u = torch.rand(3, generator=generator, dtype=torch.float64).numpy()
        lo, hi = self.scale_range
        side = size * (lo + (hi - lo) * u[0])
        # same convention as bopnp.data.crop_geometry.square_box: the centre c lands on the output centre; no
        # shift and scale 1 give the identity box (0, 0, size, size)
        cx = (size - 1) / 2.0 + (2 * u[1] - 1) * self.max_shift * size
        cy = (size - 1) / 2.0 + (2 * u[2] - 1) * self.max_shift * size
        x1 = cx - side / 2.0 + side / (2.0 * size)
        y1 = cy - side / 2.0 + side / (2.0 * size)
        return np.array([x1, y1, x1 + side, y1 + side])


__all__ = ["BoxJitter", "color_augment"]
