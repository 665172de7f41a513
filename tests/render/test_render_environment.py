"""Rendering is configured explicitly: importing ``bopnp.render`` changes nothing; the first renderer sets the EGL
platform variables (unless the user set them) before PyOpenGL is imported, and renders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bopnp.render import egl

VARIABLES = ("PYOPENGL_PLATFORM", "EGL_PLATFORM")

#: imports every module of bopnp.render, then renders one triangle; prints what changed at each step
SCRIPT = (
    f"VARIABLES = {VARIABLES!r}\n"
    + """
import json, os, sys
before = dict(os.environ)
import bopnp.render, bopnp.render.renderer, bopnp.render.gl_objects, bopnp.render.shaders, bopnp.render.gt_info
import bopnp.render.egl, bopnp.render.lighting, bopnp.render.pyrender_compat
after_import = {"environ_changed": dict(os.environ) != before, "opengl": "OpenGL" in sys.modules}
import numpy as np
from bopnp.bop.mesh import Mesh
r = bopnp.render.get_renderer(32, 32)
r.add_model(1, Mesh(np.array([[-5, -5, 0], [5, -5, 0], [0, 5, 0]], np.float32), np.array([[0, 1, 2]])))
K = np.array([[30.0, 0, 15.5], [0, 30.0, 15.5], [0, 0, 1]])
out = r.render(K, [(1, np.eye(3), np.array([0.0, 0.0, 100.0]))])
print(json.dumps({"after_import": after_import, "pixels": int((out.depth_mm > 0).sum()),
                  "env": {k: os.environ.get(k) for k in VARIABLES}}))
"""
)


def _run(env_changes: dict[str, str | None]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    if res.returncode != 0 and "RenderError" in res.stderr:
        pytest.skip(f"the renderer cannot start here: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_import_changes_nothing_and_the_first_renderer_configures_egl():
    result = _run({})
    assert result["after_import"] == {"environ_changed": False, "opengl": False}
    assert result["env"] == {"PYOPENGL_PLATFORM": "egl", "EGL_PLATFORM": "surfaceless"}
    assert result["pixels"] > 0


def test_the_users_choice_is_kept():
    result = _run({"EGL_PLATFORM": "surfaceless", "PYOPENGL_PLATFORM": "egl"})
    assert result["pixels"] > 0
    # a value the renderer would not pick itself survives configure_environment (no render needed)
    code = (
        "import os\nfrom bopnp.render import configure_environment\n"
        "configure_environment()\nprint(os.environ['EGL_PLATFORM'])"
    )
    env = dict(os.environ, EGL_PLATFORM="device")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "device", out.stderr


def test_lazy_module_imports_on_first_use_only(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    lazy = egl.LazyGLModule("json")
    assert os.environ.get("PYOPENGL_PLATFORM") is None
    assert lazy.dumps is json.dumps and "dumps" in vars(lazy)  # looked up once, then kept
    assert os.environ.get("PYOPENGL_PLATFORM") == "egl" and os.environ.get("EGL_PLATFORM") == "surfaceless"
    with pytest.raises(AttributeError):
        lazy._private  # noqa: B018


def test_pyopengl_imported_with_another_back_end_is_a_clear_error():
    code = (
        "import os\nos.environ['PYOPENGL_PLATFORM'] = 'glx'\nimport OpenGL.platform\n"
        "os.environ['PYOPENGL_PLATFORM'] = 'egl'\n"  # too late: PyOpenGL chose GLX on import
        "from bopnp.errors import RenderError\nfrom bopnp.render.egl import create_context\n"
        "try:\n    create_context()\nexcept RenderError as e:\n    print('RenderError:', e)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "RenderError" in res.stdout and "GLXPlatform" in res.stdout and "configure_environment" in res.stdout, (
        res.stdout + res.stderr
    )
