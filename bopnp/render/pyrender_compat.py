"""pyrender, importable under numpy 2, on the same EGL platform as :mod:`bopnp.render` and sampling
the same points of the image.

bopnp renders with its own OpenGL passes (:class:`bopnp.render.Renderer`); pyrender is kept as the
reference it is checked and benchmarked against. Two things stand in the way of a like-for-like use:

* pyrender 0.1.45 still reads ``np.infty`` (removed in numpy 2) in ``Mesh.bounds``, reached through
  scene bounds and shadow setup: :func:`import_pyrender` restores that alias before importing it.
* pyrender renders into a 4x multisampled framebuffer and resolves depth by a blit, which keeps sample 0
  of each pixel, at window offset (0.375, 0.125) in the standard 4x pattern, not at the pixel centre
  (measured on Mesa's llvmpipe, where the silhouettes then agree pixel for pixel; which sample a
  multisampled depth blit keeps is up to the driver, so another GL driver may need another offset).
  With OpenGL's bottom-up rows that is (+0.375, +0.875) px from an OpenCV pixel centre (pixel (u, v)
  centred at (u, v), rows top-down). :func:`intrinsics_camera` shifts the principal point by that much,
  so pyrender's depth is sampled where bopnp's renderer, and bop_toolkit's, sample it.

>>> cam = intrinsics_camera([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
>>> float(cam.cx), float(cam.cy)
(320.375, 240.875)
"""

from __future__ import annotations

import numpy as np

from bopnp.render.egl import configure_environment

#: Position of sample 0 of pyrender's 4x multisampled pixel, relative to the OpenCV pixel centre, px (u, v).
MSAA_SAMPLE0_OFFSET_PX = (0.375, 0.875)


def import_pyrender():
    """Return the ``pyrender`` module, imported with ``PYOPENGL_PLATFORM=egl`` and ``np.infty`` defined."""
    configure_environment()
    if not hasattr(np, "infty"):
        np.infty = np.inf  # pyrender 0.1.45 under numpy 2
    import pyrender

    return pyrender


def intrinsics_camera(K, znear_mm: float = 10.0, zfar_mm: float = 10000.0):
    """A ``pyrender.IntrinsicsCamera`` for the OpenCV intrinsics K (3, 3), whose depth pixels are sampled
    at OpenCV pixel centres (module docstring). Place it at the identity pose in a scene whose mesh poses
    are ``diag(1, -1, -1, 1) @ T_m2c`` (OpenCV camera axes to OpenGL's)."""
    pyrender = import_pyrender()
    K = np.asarray(K, np.float64)
    du, dv = MSAA_SAMPLE0_OFFSET_PX
    return pyrender.IntrinsicsCamera(K[0, 0], K[1, 1], K[0, 2] + du, K[1, 2] + dv, znear=znear_mm, zfar=zfar_mm)
