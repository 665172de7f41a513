"""Headless rendering of BOP scenes (OpenGL over EGL): depth, masks, coordinate maps, colour; and
scene_gt_info computed from renders.

>>> from bopnp.render import get_renderer          # doctest: +SKIP
>>> r = get_renderer(640, 480); r.add_model(1, mesh)  # doctest: +SKIP
>>> out = r.render(K, [(1, R_m2c, t_m2c)])          # doctest: +SKIP

Importing the package neither imports PyOpenGL nor changes ``os.environ``: the first renderer calls
:func:`configure_environment` (``PYOPENGL_PLATFORM=egl``, ``EGL_PLATFORM=surfaceless`` where unset) before it
imports PyOpenGL. Code that imports PyOpenGL or pyrender itself calls it first.
"""

from __future__ import annotations

from bopnp.render.egl import configure_environment
from bopnp.render.gt_info import compute_gt_info, compute_gt_info_and_masks, compute_masks
from bopnp.render.lighting import Lighting
from bopnp.render.renderer import Placement, Renderer, RenderOutput, get_renderer, projection_matrix

__all__ = [
    "configure_environment",
    "Placement",
    "Renderer",
    "RenderOutput",
    "get_renderer",
    "Lighting",
    "projection_matrix",
    "compute_gt_info",
    "compute_gt_info_and_masks",
    "compute_masks",
]
