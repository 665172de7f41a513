"""Headless OpenGL renderer of BOP scenes: depth, instance map, visible and full masks, model-frame
coordinate (xyz) maps and shaded colour, in millimetres and the OpenCV/BOP camera convention.

Conventions:
    * Poses are ``x_c = R_m2c @ x_m + t_m2c`` (mm), camera frame x right, y down, z forward.
    * Pixel (u, v) = (column, row) has its centre at the integer coordinates, as in OpenCV and BOP: a pixel
      belongs to a surface when the projection of that surface covers the pixel centre, and every value
      of a pixel is the one of the surface point seen exactly through its centre (no anti-aliasing).
    * ``depth_mm`` is the distance along the optical axis (z of the camera frame), as BOP depth images.
    * ``xyz_norm`` normalises per axis by the object's axis-aligned bounding box:
      ``(xyz_mm - centre_mm) / half_extent_mm`` with ``centre = (min + max) / 2`` and
      ``half_extent = (max - min) / 2`` of the mesh vertices, so each axis spans exactly [-1, 1]
      (Pix2Pose's per-axis normalisation, centred on the box). :meth:`Renderer.xyz_normalisation`
      returns the two vectors to undo it.

Inside the renderer the projection is built from ``K`` so that image row v lands on framebuffer row v
(no y flip is needed on read-back) and pixel centres sit at ``(u + 0.5, v + 0.5)`` in window coordinates.

Speed: one depth-tested pass draws every instance with its index, model-frame xyz, depth and normalised
xyz as outputs (instance map, visible masks, depth and xyz at float precision); in the same pass every
rasterised fragment ORs its instance's bit into a per-pixel word through image atomics, whether or not
it passes the depth test, which gives every full mask at once (OpenGL >= 4.4; older drivers, or
``BOPNP_RENDER_TWO_PASS=1``, use a second pass with a logic-OR blend instead). Full masks are only
rendered for instances whose projected bounding box overlaps another one (the others cannot be
occluded: full == visible). Closed, consistently oriented meshes are drawn with back-face culling
(:meth:`Renderer.add_model`). :meth:`Renderer.render_depths` draws each instance alone into its own
layer of an array texture (same viewport and matrices as :meth:`Renderer.render`, hence
pixel-identical silhouettes) read back at once. Models are uploaded once per renderer; GL objects are
created once per renderer size.

Threads and processes: one OpenGL context per process, shared by the renderers of every size
(:func:`get_renderer` caches one renderer per size, each with its own models); calls are serialised by
a lock, so threads may share a renderer but gain nothing. Worker processes each need their own context:
with the 'spawn' or 'forkserver' start method that is automatic. A forked child cannot use the display
its parent initialised; :func:`get_renderer` notices the new process id and starts the child on another
EGL display (on Mesa the software device; see :mod:`bopnp.render.egl`), so render only in the workers,
or use 'spawn', on GPU machines.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from bopnp.bop.mesh import Mesh
from bopnp.errors import ConfigError, RenderError, ShapeError
from bopnp.render import gl_objects as glo
from bopnp.render import shaders
from bopnp.render.egl import GL as gl  # PyOpenGL is imported on first use (after configure_environment)
from bopnp.render.egl import EglContext, create_context
from bopnp.render.lighting import Lighting

#: smallest near-plane distance, mm: surfaces closer to the camera than this are clipped
NEAR_MIN_MM = 1.0
#: instances whose full masks one pass of the bit-mask shader can hold
_BITS_PER_PASS = 128
#: most instances render_depths draws into the layers of one array texture before reading it back
_MAX_LAYERS = 16
#: the 8 corners of a box as signs of its half extent about its centre
_BOX_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)


class Placement(NamedTuple):
    """One instance to render: an added model at a pose. A plain ``(obj_id, R_m2c, t_m2c)`` tuple does as well.

    Attributes:
        obj_id: the id the model was added with (:meth:`Renderer.add_model`).
        R_m2c: (3, 3) model-to-camera rotation.
        t_m2c: (3,) model-to-camera translation, mm.
    """

    obj_id: int
    R_m2c: np.ndarray
    t_m2c: np.ndarray


@dataclass(frozen=True, eq=False)
class RenderOutput:
    """Everything one :meth:`Renderer.render` call produces for N instances in an H x W image.

    Attributes:
        depth_mm: (H, W) float32 depth of the nearest surface along the optical axis, mm; 0 = background.
        instance_map: (H, W) int16 index into the instances of the visible surface; -1 = background.
        mask_visib: (N, H, W) bool visible part of each instance (others may occlude it).
        mask_full: (N, H, W) bool silhouette of each instance alone (unoccluded); None when not requested.
        xyz_mm: (H, W, 3) float32 model-frame coordinates of the visible surface, mm; 0 on background.
        xyz_norm: (H, W, 3) float32 in [-1, 1], ``xyz_mm`` normalised per object and axis by its bounding
            box (module docstring); 0 on background.
        rgb: (H, W, 3) uint8 shaded colour when rendered with ``rgb=True`` (black background), else None.
        obj_ids: (N,) object id of each instance.
    """

    depth_mm: np.ndarray
    instance_map: np.ndarray
    mask_visib: np.ndarray
    mask_full: np.ndarray | None
    xyz_mm: np.ndarray
    xyz_norm: np.ndarray
    rgb: np.ndarray | None
    obj_ids: tuple[int, ...]


def projection_matrix(K: np.ndarray, width: int, height: int, near_mm: float, far_mm: float) -> np.ndarray:
    """OpenGL clip matrix for OpenCV camera-frame points and intrinsics ``K``.

    Maps a camera point (X, Y, Z) with pixel projection (u, v) to window coordinates
    (u + 0.5, v + 0.5), i.e. image row v onto framebuffer row v, and Z in [near, far] onto NDC depth
    [-1, 1]; w_clip = Z.

    Args:
        K: (3, 3) intrinsics (skew allowed).
        width, height: image size, pixels.
        near_mm, far_mm: clipping distances along the optical axis, mm.
    Returns:
        (4, 4) float64 matrix.
    """
    fx, s, cx = K[0]
    fy, cy = K[1, 1], K[1, 2]
    a = (far_mm + near_mm) / (far_mm - near_mm)
    b = -2.0 * far_mm * near_mm / (far_mm - near_mm)
    return np.array(
        [
            [2 * fx / width, 2 * s / width, 2 * (cx + 0.5) / width - 1, 0],
            [0, 2 * fy / height, 2 * (cy + 0.5) / height - 1, 0],
            [0, 0, a, b],
            [0, 0, 1, 0],
        ],
        dtype=np.float64,
    )


def _numpy(x) -> np.ndarray:
    """float64 numpy array of an array-like or a (CPU or GPU) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _as_K(K) -> np.ndarray:
    K = _numpy(K)
    if K.shape != (3, 3):
        raise ShapeError(f"K: expected shape (3, 3), got {K.shape}")
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ShapeError(f"K: focal lengths must be positive and all entries finite, got {K.tolist()}")
    return K


# One EGL context per process, shared by all renderers of that process.
_context_lock = threading.Lock()
_registry_lock = threading.Lock()
_context: EglContext | None = None
_programs: dict[str, glo.Program] = {}
_renderers: dict[tuple[int, int], Renderer] = {}
_forked_displays: set[str] = set()  # displays that an ancestor process initialised before forking


def _shared_context(device: int | None) -> EglContext:
    global _context
    with _context_lock:
        if _context is None or _context.owner_pid != os.getpid():
            if _context is not None:  # inherited through fork: unusable here, forget it without destroying it
                _forked_displays.add(_context.display_key)
                _programs.clear()
                _renderers.clear()
            _context = create_context(device, avoid_displays=_forked_displays)
        return _context


def _program(name: str) -> glo.Program:
    if name not in _programs:
        sources = {
            "visible": (shaders.VISIBLE_VS, shaders.VISIBLE_FS),
            "visible_rgb": (
                shaders.with_defines(shaders.VISIBLE_VS, "WITH_RGB"),
                shaders.with_defines(shaders.VISIBLE_FS, "WITH_RGB"),
            ),
            "visible_bits": (
                shaders.VISIBLE_VS,
                shaders.with_defines(shaders.VISIBLE_FS, "WITH_BITS", version="430 core"),
            ),
            "visible_rgb_bits": (
                shaders.with_defines(shaders.VISIBLE_VS, "WITH_RGB"),
                shaders.with_defines(shaders.VISIBLE_FS, "WITH_RGB", "WITH_BITS", version="430 core"),
            ),
            "full": (shaders.FULL_VS, shaders.FULL_FS),
            "depth": (shaders.DEPTH_VS, shaders.DEPTH_FS),
        }[name]
        _programs[name] = glo.Program(*sources, name=name)
    return _programs[name]


def get_renderer(width: int, height: int, *, device: int | None = None) -> Renderer:
    """The renderer of this process for images of ``width`` x ``height`` pixels (created on first use).

    Args:
        width, height: image size, pixels.
        device: EGL device index for the process's context (see :mod:`bopnp.render.egl`); only used
            when the context is created.
    """
    key = (int(width), int(height))
    with _registry_lock:
        _shared_context(device)
        renderer = _renderers.get(key)
        if renderer is None:  # (a new context, after a fork, came with an empty registry)
            renderer = Renderer(width, height, device=device)
            _renderers[key] = renderer
        return renderer


class Renderer:
    """Renders BOP scenes of registered meshes into ``width`` x ``height`` images.

    Example:
        >>> r = get_renderer(640, 480)
        >>> r.add_model(1, mesh)                       # doctest: +SKIP
        >>> out = r.render(K, [(1, R_m2c, t_m2c)])     # doctest: +SKIP
        >>> out.depth_mm.shape, out.mask_visib.shape   # doctest: +SKIP
        ((480, 640), (1, 480, 640))
    """

    def __init__(self, width: int, height: int, *, device: int | None = None):
        if int(width) < 1 or int(height) < 1:
            raise ConfigError(f"renderer size must be positive, got width={width}, height={height}")
        self.width, self.height = int(width), int(height)
        self._ctx = _shared_context(device)
        self._models: dict[int, glo.GpuModel] = {}
        self._layer_targets: dict[int, tuple[int, int, int]] = {}
        with self._ctx.lock:
            self._ctx.make_current()
            self._max_size = int(gl.glGetIntegerv(gl.GL_MAX_RENDERBUFFER_SIZE))
            if max(self.width, self.height) > self._max_size:
                raise ConfigError(f"renderer size {self.width}x{self.height} exceeds the GL limit {self._max_size}")
            # framebuffers are created on first use (a renderer used only for render_depths needs none)
            self._fbos: dict[str, tuple[int, list[int]]] = {}
            version = (int(gl.glGetIntegerv(gl.GL_MAJOR_VERSION)), int(gl.glGetIntegerv(gl.GL_MINOR_VERSION)))
            #: full masks in the depth-tested pass through image atomics (OpenGL >= 4.4), else a second pass
            self.single_pass = version >= (4, 4) and os.environ.get("BOPNP_RENDER_TWO_PASS", "") in ("", "0")
            self._bits_textures: dict[int, int] = {}
            for name in ("visible", "visible_rgb", "full", "depth") + (
                ("visible_bits", "visible_rgb_bits") if self.single_pass else ()
            ):
                _program(name)
            gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
            gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)

    # ---------------------------------------------------------------- models

    def add_model(self, obj_id: int, mesh: Mesh, *, cull_back_faces: bool | None = None) -> None:
        """Upload ``mesh`` as object ``obj_id``; a no-op when the same mesh is already there.

        A different mesh under an existing id replaces the old one.

        Args:
            obj_id: the BOP object id.
            mesh: triangle mesh in mm (normals are computed when missing).
            cull_back_faces: skip the triangles facing away from the camera (about half the work).
                None (default) decides per mesh: only closed, consistently oriented meshes (every edge
                used as often in each direction), whose back faces are always hidden behind front faces
                (for a camera outside the object), so every output is unchanged. True forces it (for
                solids with small defects, orientation from the signed volume); False never culls.
        """
        obj_id = int(obj_id)
        old = self._models.get(obj_id)
        if old is not None and (old.mesh is mesh or glo.same_mesh(old.mesh, mesh)) and cull_back_faces is None:
            return
        with self._ctx.lock:
            self._ctx.make_current()
            model = glo.upload_model(obj_id, mesh, cull_back_faces)
            if old is not None:
                glo.delete_model(old)
        self._models[obj_id] = model

    def culls_back_faces(self, obj_id: int) -> bool:
        """Whether ``obj_id`` is drawn with back-face culling (see :meth:`add_model`)."""
        return self._model(obj_id).cull is not None

    def mesh(self, obj_id: int) -> Mesh:
        """The mesh added as ``obj_id``."""
        return self._model(obj_id).mesh

    def projected_aabb_box_px(self, K: np.ndarray, obj_id: int, R, t, min_z_mm: float) -> np.ndarray | None:
        """(u_min, v_min, u_max, v_max) of the projected 8 corners of the model's axis-aligned bounding box under
        pose (R, t): a conservative box of its silhouette, float pixels, not clipped to the image (unlike
        :func:`bopnp.eval.render.projected_box`, which projects every vertex the bop_toolkit way). None when a
        corner lies at z <= ``min_z_mm``.

        Args:
            K: (3, 3) float64 intrinsics.
            obj_id: an added model.
            R, t: (3, 3) model-to-camera rotation and (3,) translation, mm.
            min_z_mm: the box is only defined when every corner lies beyond this depth, mm.
        """
        model = self._model(obj_id)
        x_c = (model.centre_mm + _BOX_CORNER_SIGNS * model.half_extent_mm) @ _numpy(R).T + _numpy(t).reshape(3)
        if np.any(x_c[:, 2] <= min_z_mm):
            return None
        uv = (x_c @ K.T)[:, :2] / x_c[:, 2:]
        return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])

    def xyz_normalisation(self, obj_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(centre_mm (3,), half_extent_mm (3,)) with ``xyz_norm = (xyz_mm - centre_mm) / half_extent_mm``."""
        model = self._model(obj_id)
        return model.centre_mm.copy(), model.half_extent_mm.copy()

    # ---------------------------------------------------------------- rendering

    def render(
        self,
        K,
        instances: Sequence[Placement],
        *,
        rgb: bool = False,
        lighting: Lighting | None = None,
        full_masks: bool = True,
    ) -> RenderOutput:
        """Render a scene of N instances.

        Args:
            K: (3, 3) intrinsics of the ``width`` x ``height`` image.
            instances: N :class:`Placement` ``(obj_id, R_m2c (3, 3), t_m2c (3,) mm)`` of added models.
            rgb: also render shaded colour.
            lighting: lights of the colour render (default :class:`Lighting`()).
            full_masks: also render each instance's unoccluded silhouette (``mask_full``).
        Returns:
            :class:`RenderOutput`.
        Raises:
            ShapeError: bad K or pose; RenderError: unknown obj_id or a GL failure.
        """
        K = _as_K(K)
        obj_ids, poses = self._parse_instances(instances)
        n = len(obj_ids)
        H, W = self.height, self.width
        lighting = (lighting or Lighting()).validate() if rgb else None
        near, far = self._clip_range(obj_ids, poses)
        proj = projection_matrix(K, W, H, near, far) if near < far else None
        with self._ctx.lock:
            self._ctx.make_current()
            try:
                # instances that no other one can occlude need no full-mask rendering (full == visible)
                occludable = self._occludable(K, obj_ids, poses, near) if full_masks and proj is not None else []
                in_pass = occludable[:_BITS_PER_PASS] if self.single_pass else []
                xyz_mm, index, depth_mm, xyz_norm, colour, bits = self._draw_visible(
                    obj_ids, poses, proj, lighting, in_pass
                )
                rest = occludable[len(in_pass) :]
                if rest:
                    more = self._draw_full([obj_ids[i] for i in rest], [poses[i] for i in rest], proj)
                    bits = more if bits is None else np.concatenate([bits, more])
            except gl.GLError as exc:
                raise RenderError(f"OpenGL error while rendering: {exc}") from exc

        instance_map = index.astype(np.int16)
        mask_visib = instance_map[None] == np.arange(n, dtype=np.int16)[:, None, None]
        mask_full = None
        if full_masks:
            # an instance whose projection overlaps no other one is never occluded: full == visible
            mask_full = mask_visib.copy()
            if occludable:
                one = np.uint32(1)
                for k, i in enumerate(occludable):
                    np.not_equal(bits[k // 32] & (one << np.uint32(k % 32)), 0, out=mask_full[i])
        return RenderOutput(
            depth_mm=depth_mm,
            instance_map=instance_map,
            mask_visib=mask_visib,
            mask_full=mask_full,
            xyz_mm=xyz_mm,
            xyz_norm=xyz_norm,
            rgb=colour,
            obj_ids=tuple(obj_ids),
        )

    def render_depths(self, K, instances: Sequence[Placement]) -> np.ndarray:
        """Depth of each instance rendered alone (for VSD and full masks).

        Args:
            K: (3, 3) intrinsics.
            instances: N :class:`Placement` ``(obj_id, R_m2c (3, 3), t_m2c (3,) mm)``.
        Returns:
            (N, H, W) float32 depth along the optical axis, mm; 0 where the instance is absent.
        """
        K = _as_K(K)
        obj_ids, poses = self._parse_instances(instances)
        n, H, W = len(obj_ids), self.height, self.width
        out = np.zeros((n, H, W), np.float32)
        if n == 0:
            return out
        near, far = self._clip_range(obj_ids, poses)
        if not near < far:
            return out
        proj = projection_matrix(K, W, H, near, far)
        layers = 1 << int(np.ceil(np.log2(min(n, _MAX_LAYERS))))
        with self._ctx.lock:
            self._ctx.make_current()
            try:
                if layers not in self._layer_targets:
                    self._layer_targets[layers] = glo.make_layered_target(W, H, layers)
                fbo, texture, _ = self._layer_targets[layers]
                prog = _program("depth")
                loc_mvp, loc_mv = prog.loc("u_mvp"), prog.loc("u_mv")
                gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, fbo)
                gl.glDrawBuffers(1, [gl.GL_COLOR_ATTACHMENT0])
                gl.glViewport(0, 0, W, H)
                gl.glUseProgram(prog.program)
                gl.glEnable(gl.GL_DEPTH_TEST)
                gl.glDepthFunc(gl.GL_LESS)
                gl.glDisable(gl.GL_CULL_FACE)
                buffer = np.empty((layers, H, W), np.float32)
                for start in range(0, n, layers):
                    chunk = range(start, min(n, start + layers))
                    for k, i in enumerate(chunk):
                        # same viewport and matrices as render(): identical rasterisation, pixel for pixel
                        gl.glFramebufferTextureLayer(gl.GL_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, texture, 0, k)
                        gl.glClearBufferfv(gl.GL_COLOR, 0, (0.0, 0.0, 0.0, 0.0))
                        gl.glClearBufferfv(gl.GL_DEPTH, 0, (1.0,))
                        model = self._models[obj_ids[i]]
                        gl.glUniformMatrix4fv(loc_mvp, 1, gl.GL_TRUE, (proj @ poses[i]).astype(np.float32))
                        gl.glUniformMatrix4fv(loc_mv, 1, gl.GL_TRUE, poses[i].astype(np.float32))
                        glo.draw_model(model)
                    glo.read_array_texture(texture, gl.GL_RED, gl.GL_FLOAT, buffer)
                    out[start : start + len(chunk)] = buffer[: len(chunk)]
                gl.glBindVertexArray(0)
                gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, 0)
            except gl.GLError as exc:
                raise RenderError(f"OpenGL error while rendering depths: {exc}") from exc
        return out

    @property
    def gl_renderer(self) -> str:
        """The OpenGL renderer string (e.g. 'llvmpipe ...' or 'NVIDIA H200/PCIe/SSE2')."""
        return self._ctx.gl_renderer

    @property
    def device_name(self) -> str:
        """The EGL display the context runs on (e.g. 'default EGL display' or 'NVIDIA EGL device 0 (CUDA 0)')."""
        return self._ctx.device_name

    # ---------------------------------------------------------------- internals

    def _model(self, obj_id) -> glo.GpuModel:
        try:
            return self._models[int(obj_id)]
        except KeyError:
            raise RenderError(
                f"object {obj_id} has not been added to the renderer; call add_model({obj_id}, mesh) first"
            ) from None

    def _parse_instances(self, instances) -> tuple[list[int], list[np.ndarray]]:
        """obj ids and (4, 4) float64 model-to-camera transforms."""
        obj_ids, poses = [], []
        for i, item in enumerate(instances):
            try:
                obj_id, R, t = item
            except (TypeError, ValueError):
                raise ShapeError(
                    f"instances[{i}]: expected a tuple (obj_id, R_m2c (3, 3), t_m2c (3,)), got {type(item).__name__}"
                ) from None
            self._model(obj_id)
            R, t = _numpy(R), _numpy(t)
            if R.shape != (3, 3):
                raise ShapeError(f"instances[{i}] R_m2c: expected shape (3, 3), got {R.shape}")
            if t.size != 3:
                raise ShapeError(f"instances[{i}] t_m2c: expected 3 values (mm), got shape {t.shape}")
            if not (np.all(np.isfinite(R)) and np.all(np.isfinite(t))):
                raise ShapeError(f"instances[{i}]: pose has non-finite values")
            T = np.eye(4)
            T[:3, :3] = R
            T[:3, 3] = t.reshape(3)
            obj_ids.append(int(obj_id))
            poses.append(T)
        if len(obj_ids) > np.iinfo(np.int16).max:
            raise ConfigError(f"at most {np.iinfo(np.int16).max} instances per render, got {len(obj_ids)}")
        return obj_ids, poses

    def _clip_range(self, obj_ids: list[int], poses: list[np.ndarray]) -> tuple[float, float]:
        """(near, far) mm enclosing every instance's bounding sphere, near >= NEAR_MIN_MM."""
        if not obj_ids:
            return NEAR_MIN_MM, 2 * NEAR_MIN_MM
        z_lo, z_hi = np.inf, -np.inf
        for obj_id, T in zip(obj_ids, poses):
            model = self._models[obj_id]
            z = T[2, :3] @ model.centre_mm + T[2, 3]
            z_lo = min(z_lo, z - model.radius_mm)
            z_hi = max(z_hi, z + model.radius_mm)
        near = max(NEAR_MIN_MM, 0.99 * z_lo - 1.0)
        far = 1.01 * z_hi + 1.0
        return float(near), float(far)

    def _draw_visible(self, obj_ids, poses, proj, lighting: Lighting | None, bit_instances: Sequence[int] = ()):
        """The depth-tested pass; ``bit_instances`` (at most 128) also get their full mask as bit
        k % 32 of word k // 32 of the returned (words, H, W) uint32 array (None when empty)."""
        H, W = self.height, self.width
        rgb = lighting is not None
        with_bits = len(bit_instances) > 0  # only occludable instances, so proj is set and N >= 2
        prog = _program("visible" + ("_rgb" if rgb else "") + ("_bits" if with_bits else ""))
        word_of = {}
        if with_bits:
            n_words = -(-len(bit_instances) // 32)
            bits_texture = self._bits_texture(n_words)
            gl.glClearTexImage(bits_texture, 0, gl.GL_RED_INTEGER, gl.GL_UNSIGNED_INT, None)
            gl.glBindImageTexture(0, bits_texture, 0, gl.GL_TRUE, 0, gl.GL_READ_WRITE, gl.GL_R32UI)
            word_of = {i: k for k, i in enumerate(bit_instances)}
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, self._fbo("visible"))
        attachments = [gl.GL_COLOR_ATTACHMENT0 + k for k in range(5 if rgb else 4)]
        gl.glDrawBuffers(len(attachments), attachments)
        gl.glViewport(0, 0, W, H)
        gl.glClearBufferfv(gl.GL_COLOR, 0, (0.0, 0.0, 0.0, 0.0))
        gl.glClearBufferiv(gl.GL_COLOR, 1, (-1, 0, 0, 0))
        gl.glClearBufferfv(gl.GL_COLOR, 2, (0.0, 0.0, 0.0, 0.0))
        gl.glClearBufferfv(gl.GL_COLOR, 3, (0.0, 0.0, 0.0, 0.0))
        if rgb:
            gl.glClearBufferfv(gl.GL_COLOR, 4, (0.0, 0.0, 0.0, 1.0))
        gl.glClearBufferfv(gl.GL_DEPTH, 0, (1.0,))
        if proj is not None and obj_ids:
            gl.glUseProgram(prog.program)
            gl.glEnable(gl.GL_DEPTH_TEST)
            gl.glDepthFunc(gl.GL_LESS)
            gl.glDisable(gl.GL_CULL_FACE)
            gl.glDisable(gl.GL_BLEND)
            if rgb:
                self._set_lighting(prog, lighting)
            loc_mvp, loc_mv, loc_index = prog.loc("u_mvp"), prog.loc("u_mv"), prog.loc("u_index")
            loc_centre, loc_half = prog.loc("u_centre_m"), prog.loc("u_half_extent_m")
            for i, (obj_id, mv) in enumerate(zip(obj_ids, poses)):
                model = self._models[obj_id]
                gl.glUniformMatrix4fv(loc_mvp, 1, gl.GL_TRUE, (proj @ mv).astype(np.float32))
                gl.glUniformMatrix4fv(loc_mv, 1, gl.GL_TRUE, mv.astype(np.float32))
                gl.glUniform1i(loc_index, i)
                gl.glUniform3f(loc_centre, *model.centre_mm)
                gl.glUniform3f(loc_half, *model.half_extent_mm)
                if with_bits:
                    k = word_of.get(i)
                    gl.glUniform1i(prog.loc("u_word"), -1 if k is None else k // 32)
                    gl.glUniform1ui(prog.loc("u_bit"), 0 if k is None else 1 << (k % 32))
                if rgb:
                    gl.glUniform1i(prog.loc("u_use_texture"), int(model.texture is not None))
                    if model.texture is not None:
                        gl.glActiveTexture(gl.GL_TEXTURE0)
                        gl.glBindTexture(gl.GL_TEXTURE_2D, model.texture)
                        gl.glUniform1i(prog.loc("u_texture"), 0)
                glo.draw_model(model)
            gl.glBindVertexArray(0)
        xyz_mm = np.empty((H, W, 3), np.float32)
        index = np.empty((H, W), np.int32)
        depth_mm = np.empty((H, W), np.float32)
        xyz_norm = np.empty((H, W, 3), np.float32)
        for k, (fmt, dtype, out) in enumerate(
            [
                (gl.GL_RGB, gl.GL_FLOAT, xyz_mm),
                (gl.GL_RED_INTEGER, gl.GL_INT, index),
                (gl.GL_RED, gl.GL_FLOAT, depth_mm),
                (gl.GL_RGB, gl.GL_FLOAT, xyz_norm),
            ]
        ):
            gl.glReadBuffer(gl.GL_COLOR_ATTACHMENT0 + k)
            glo.read_pixels(W, H, fmt, dtype, out)
        colour = None
        if rgb:
            colour = np.empty((H, W, 3), np.uint8)
            gl.glReadBuffer(gl.GL_COLOR_ATTACHMENT4)
            glo.read_pixels(W, H, gl.GL_RGB, gl.GL_UNSIGNED_BYTE, colour)
        bits = None
        if with_bits:
            gl.glMemoryBarrier(gl.GL_TEXTURE_UPDATE_BARRIER_BIT)
            bits = np.empty((n_words, H, W), np.uint32)
            glo.read_array_texture(bits_texture, gl.GL_RED_INTEGER, gl.GL_UNSIGNED_INT, bits)
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, 0)
        return xyz_mm, index, depth_mm, xyz_norm, colour, bits

    def _bits_texture(self, n_words: int) -> int:
        """R32UI array texture of ``n_words`` layers for the full-mask bits of the single pass."""
        if n_words not in self._bits_textures:
            self._bits_textures[n_words] = glo.array_texture(self.width, self.height, n_words, gl.GL_R32UI)
        return self._bits_textures[n_words]

    def _occludable(self, K: np.ndarray, obj_ids: list[int], poses: list[np.ndarray], near: float) -> list[int]:
        """Indices of the instances whose projected bounding box overlaps another instance's.

        The others cannot be occluded by any instance, so their full mask equals their visible mask.
        Boxes are conservative: the projection of the 8 corners of the model's bounding box (every
        instance counts as overlapping when a corner lies in front of the near plane's 1 mm margin).
        """
        n = len(obj_ids)
        if n < 2:
            return []
        rects = np.empty((n, 4))
        for i, (obj_id, T) in enumerate(zip(obj_ids, poses)):
            box = self.projected_aabb_box_px(K, obj_id, T[:3, :3], T[:3, 3], near + 1.0)
            if box is None:
                return list(range(n))
            rects[i] = box + [-1, -1, 1, 1]
        overlap = (
            (rects[:, None, 0] <= rects[None, :, 2])
            & (rects[None, :, 0] <= rects[:, None, 2])
            & (rects[:, None, 1] <= rects[None, :, 3])
            & (rects[None, :, 1] <= rects[:, None, 3])
        )
        np.fill_diagonal(overlap, False)
        return [int(i) for i in np.flatnonzero(overlap.any(axis=1))]

    def _draw_full(self, obj_ids, poses, proj) -> np.ndarray:
        """(ceil(N / 32), H, W) uint32 words; bit i % 32 of word i // 32 is instance i's full mask."""
        H, W, n = self.height, self.width, len(obj_ids)
        n_words = -(-n // 32)
        words = np.zeros((n_words, H, W), np.uint32)
        prog = _program("full")
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, self._fbo("full"))
        gl.glDrawBuffers(1, [gl.GL_COLOR_ATTACHMENT0])
        gl.glViewport(0, 0, W, H)
        gl.glUseProgram(prog.program)
        gl.glDisable(gl.GL_DEPTH_TEST)
        gl.glDisable(gl.GL_CULL_FACE)
        gl.glEnable(gl.GL_COLOR_LOGIC_OP)
        gl.glLogicOp(gl.GL_OR)
        loc_mvp, loc_bits = prog.loc("u_mvp"), prog.loc("u_bits")
        readback = np.empty((H, W, 4), np.uint32)
        for start in range(0, n, _BITS_PER_PASS):
            gl.glClearBufferuiv(gl.GL_COLOR, 0, (0, 0, 0, 0))
            chunk = range(start, min(n, start + _BITS_PER_PASS))
            for i in chunk:
                model = self._models[obj_ids[i]]
                bits = [0, 0, 0, 0]
                bits[(i - start) // 32] = 1 << ((i - start) % 32)
                gl.glUniformMatrix4fv(loc_mvp, 1, gl.GL_TRUE, (proj @ poses[i]).astype(np.float32))
                gl.glUniform4ui(loc_bits, *bits)
                glo.draw_model(model)
            gl.glReadBuffer(gl.GL_COLOR_ATTACHMENT0)
            used = -(-len(chunk) // 32)
            if used == 1:
                glo.read_pixels(W, H, gl.GL_RED_INTEGER, gl.GL_UNSIGNED_INT, words[start // 32])
            else:
                glo.read_pixels(W, H, gl.GL_RGBA_INTEGER, gl.GL_UNSIGNED_INT, readback)
                words[start // 32 : start // 32 + used] = readback[..., :used].transpose(2, 0, 1)
        gl.glDisable(gl.GL_COLOR_LOGIC_OP)
        gl.glBindVertexArray(0)
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, 0)
        return words

    def _set_lighting(self, prog: glo.Program, lighting: Lighting) -> None:
        d = np.asarray(lighting.direction_c, np.float64)
        d = d / np.linalg.norm(d)
        gl.glUniform1f(prog.loc("u_ambient"), lighting.ambient)
        gl.glUniform3f(prog.loc("u_dir_light_c"), *d)
        gl.glUniform1f(prog.loc("u_dir_intensity"), lighting.directional)
        gl.glUniform3f(prog.loc("u_point_pos_c"), *lighting.point_position_mm)
        gl.glUniform1f(prog.loc("u_point_intensity"), lighting.point)
        gl.glUniform1f(prog.loc("u_specular"), lighting.specular)
        gl.glUniform1f(prog.loc("u_shininess"), lighting.shininess)

    def _fbo(self, name: str) -> int:
        """The framebuffer of a pass: 'visible' (xyz, index, depth, xyz_norm, rgb + depth buffer) or 'full'."""
        if name not in self._fbos:
            formats = {
                "visible": [gl.GL_RGBA32F, gl.GL_R32I, gl.GL_R32F, gl.GL_RGBA32F, gl.GL_RGBA8],
                "full": [gl.GL_RGBA32UI],
            }[name]
            self._fbos[name] = glo.make_framebuffer(self.width, self.height, formats, depth=name == "visible")
        return self._fbos[name][0]
