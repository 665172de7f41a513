"""OpenGL objects of the renderer: meshes on the GPU, shader programs, framebuffers, textures and
read-back into numpy. Every function here needs the renderer's context to be current."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from bopnp.bop.mesh import Mesh
from bopnp.errors import RenderError, ShapeError
from bopnp.render.egl import GL as gl  # PyOpenGL is imported on first use (after configure_environment)
from bopnp.render.egl import GL_SHADERS as gl_shaders

#: grey albedo of meshes without vertex colours or texture
DEFAULT_GREY = 0.7


@dataclass
class GpuModel:
    """A mesh uploaded as one interleaved vertex buffer (position, normal, colour, uv) + index buffer."""

    mesh: Mesh  # the mesh as given to add_model
    vao: int
    vbo: int
    ebo: int
    n_indices: int
    texture: int | None
    centre_mm: np.ndarray  # (3,) bounding-box centre
    half_extent_mm: np.ndarray  # (3,) bounding-box half size (>= 1e-6)
    radius_mm: float  # radius of a sphere about centre_mm holding every vertex
    cull: int | None  # GL face to cull (closed meshes), None to draw both sides


def upload_model(obj_id: int, mesh: Mesh, cull_back_faces: bool | None) -> GpuModel:
    """Validate ``mesh`` and upload it (see :meth:`bopnp.render.Renderer.add_model` for the culling rule).

    Raises:
        ShapeError: malformed vertices, faces or texture, naming ``obj_id``.
    """
    source = mesh
    if mesh.uv is None and mesh.face_uv is not None and mesh.texture is not None:
        mesh = mesh.with_vertex_uv()  # per-corner texture coordinates -> one uv per (split) vertex
    vertices = np.asarray(mesh.vertices_mm, dtype=np.float32)
    faces = np.asarray(mesh.faces)
    if (
        vertices.ndim != 2
        or vertices.shape[1] != 3
        or len(vertices) == 0
        or faces.ndim != 2
        or faces.shape[1] != 3
        or len(faces) == 0
    ):
        raise ShapeError(
            f"mesh of object {obj_id}: expected vertices (V, 3) and faces (F, 3), got {vertices.shape} and "
            f"{faces.shape}"
        )
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ShapeError(
            f"mesh of object {obj_id}: face indices must lie in [0, {len(vertices) - 1}], got [{faces.min()}, "
            f"{faces.max()}]"
        )
    normals = mesh.normals
    if normals is None or np.asarray(normals).shape != vertices.shape:
        normals = vertex_normals(vertices.astype(np.float64), faces)
    colors = mesh.colors
    if colors is None or np.asarray(colors).shape != vertices.shape:
        colors = np.full_like(vertices, DEFAULT_GREY)
    else:
        colors = np.asarray(colors, dtype=np.float32) / 255.0
    has_texture = mesh.texture is not None and mesh.uv is not None and np.asarray(mesh.uv).shape == (len(vertices), 2)
    uv = np.asarray(mesh.uv, dtype=np.float32) if has_texture else np.zeros((len(vertices), 2), np.float32)
    interleaved = np.ascontiguousarray(
        np.hstack([vertices, np.asarray(normals, np.float32), colors, uv]), dtype=np.float32
    )
    indices = np.ascontiguousarray(faces, dtype=np.uint32)

    lo, hi = vertices.min(0).astype(np.float64), vertices.max(0).astype(np.float64)
    centre = (lo + hi) / 2
    cull = None
    if cull_back_faces is not False:
        closed, volume = closed_and_volume(vertices, faces)
        if (closed or cull_back_faces) and volume != 0:
            # the projection maps image rows to framebuffer rows, which mirrors the winding: outward
            # counter-clockwise faces turned to the camera are GL back faces, so cull GL front faces
            cull = gl.GL_FRONT if volume > 0 else gl.GL_BACK

    texture = upload_texture(np.asarray(mesh.texture), obj_id) if has_texture else None
    vao = int(gl.glGenVertexArrays(1))
    vbo, ebo = (int(b) for b in gl.glGenBuffers(2))
    gl.glBindVertexArray(vao)
    gl.glBindBuffer(gl.GL_ARRAY_BUFFER, vbo)
    gl.glBufferData(gl.GL_ARRAY_BUFFER, interleaved.nbytes, interleaved, gl.GL_STATIC_DRAW)
    gl.glBindBuffer(gl.GL_ELEMENT_ARRAY_BUFFER, ebo)
    gl.glBufferData(gl.GL_ELEMENT_ARRAY_BUFFER, indices.nbytes, indices, gl.GL_STATIC_DRAW)
    stride = interleaved.shape[1] * 4
    for location, (offset, size) in enumerate([(0, 3), (3, 3), (6, 3), (9, 2)]):
        gl.glEnableVertexAttribArray(location)
        gl.glVertexAttribPointer(location, size, gl.GL_FLOAT, gl.GL_FALSE, stride, ctypes.c_void_p(offset * 4))
    gl.glBindVertexArray(0)
    return GpuModel(
        mesh=source,
        vao=vao,
        vbo=vbo,
        ebo=ebo,
        n_indices=int(indices.size),
        texture=texture,
        centre_mm=centre,
        half_extent_mm=np.maximum((hi - lo) / 2, 1e-6),
        radius_mm=float(np.linalg.norm(vertices.astype(np.float64) - centre, axis=1).max()),
        cull=cull,
    )


def delete_model(model: GpuModel) -> None:
    gl.glDeleteVertexArrays(1, [model.vao])
    gl.glDeleteBuffers(2, [model.vbo, model.ebo])
    if model.texture is not None:
        gl.glDeleteTextures([model.texture])


def draw_model(model: GpuModel) -> None:
    """Draw a model's triangles with its face culling."""
    if model.cull is None:
        gl.glDisable(gl.GL_CULL_FACE)
    else:
        gl.glEnable(gl.GL_CULL_FACE)
        gl.glCullFace(model.cull)
    gl.glBindVertexArray(model.vao)
    gl.glDrawElements(gl.GL_TRIANGLES, model.n_indices, gl.GL_UNSIGNED_INT, None)


def upload_texture(image: np.ndarray, obj_id: int) -> int:
    """A mipmapped RGB texture; the image's first row is the top (uv origin bottom-left, as OpenGL)."""
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ShapeError(f"texture of object {obj_id}: expected (H, W, 3) or (H, W, 4) uint8, got {image.shape}")
    rows = np.ascontiguousarray(np.flipud(image[..., :3]).astype(np.uint8))
    tex = int(gl.glGenTextures(1))
    gl.glBindTexture(gl.GL_TEXTURE_2D, tex)
    gl.glTexImage2D(
        gl.GL_TEXTURE_2D, 0, gl.GL_RGB8, rows.shape[1], rows.shape[0], 0, gl.GL_RGB, gl.GL_UNSIGNED_BYTE, rows
    )
    gl.glGenerateMipmap(gl.GL_TEXTURE_2D)
    gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MIN_FILTER, gl.GL_LINEAR_MIPMAP_LINEAR)
    gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MAG_FILTER, gl.GL_LINEAR)
    gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_S, gl.GL_REPEAT)
    gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_T, gl.GL_REPEAT)
    gl.glBindTexture(gl.GL_TEXTURE_2D, 0)
    return tex


def array_texture(width: int, height: int, layers: int, internal_format: int) -> int:
    """An immutable 2D array texture without mipmaps."""
    texture = int(gl.glGenTextures(1))
    gl.glBindTexture(gl.GL_TEXTURE_2D_ARRAY, texture)
    gl.glTexStorage3D(gl.GL_TEXTURE_2D_ARRAY, 1, internal_format, width, height, layers)
    gl.glBindTexture(gl.GL_TEXTURE_2D_ARRAY, 0)
    return texture


def _check_complete(what: str) -> None:
    status = gl.glCheckFramebufferStatus(gl.GL_FRAMEBUFFER)
    gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, 0)
    if status != gl.GL_FRAMEBUFFER_COMPLETE:
        raise RenderError(
            f"{what} framebuffer incomplete (status 0x{int(status):x}); the OpenGL driver lacks a needed format"
        )


def make_framebuffer(width: int, height: int, color_formats: list[int], depth: bool) -> tuple[int, list[int]]:
    """(framebuffer, renderbuffers): one colour renderbuffer per format, then a float depth buffer."""
    fbo = int(gl.glGenFramebuffers(1))
    gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, fbo)
    rbs = [int(x) for x in np.atleast_1d(gl.glGenRenderbuffers(len(color_formats) + int(depth)))]
    for k, fmt in enumerate(color_formats):
        gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, rbs[k])
        gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, fmt, width, height)
        gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0 + k, gl.GL_RENDERBUFFER, rbs[k])
    if depth:
        gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, rbs[-1])
        gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, gl.GL_DEPTH_COMPONENT32F, width, height)
        gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, gl.GL_DEPTH_ATTACHMENT, gl.GL_RENDERBUFFER, rbs[-1])
    _check_complete(f"{width}x{height}")
    return fbo, rbs


def make_layered_target(width: int, height: int, layers: int) -> tuple[int, int, int]:
    """(framebuffer, R32F array texture of ``layers`` layers, depth renderbuffer shared by the layers)."""
    texture = array_texture(width, height, layers, gl.GL_R32F)
    fbo = int(gl.glGenFramebuffers(1))
    gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, fbo)
    depth_rb = int(gl.glGenRenderbuffers(1))
    gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, depth_rb)
    gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, gl.GL_DEPTH_COMPONENT32F, width, height)
    gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, gl.GL_DEPTH_ATTACHMENT, gl.GL_RENDERBUFFER, depth_rb)
    gl.glFramebufferTextureLayer(gl.GL_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, texture, 0, 0)
    _check_complete("layered depth")
    return fbo, texture, depth_rb


class Program:
    """A compiled and linked shader program with cached uniform locations."""

    def __init__(self, vs: str, fs: str, name: str):
        try:
            self.program = gl_shaders.compileProgram(
                gl_shaders.compileShader(vs, gl.GL_VERTEX_SHADER),
                gl_shaders.compileShader(fs, gl.GL_FRAGMENT_SHADER),
                validate=False,
            )
        except Exception as exc:
            raise RenderError(f"compiling the {name!r} shader program failed: {exc}") from exc
        self._locations: dict[str, int] = {}

    def loc(self, name: str) -> int:
        if name not in self._locations:
            self._locations[name] = gl.glGetUniformLocation(self.program, name)
        return self._locations[name]


def read_pixels(width: int, height: int, fmt: int, dtype: int, out: np.ndarray) -> None:
    """glReadPixels of the read buffer into a C-contiguous numpy array (rows in framebuffer order)."""
    assert out.flags.c_contiguous
    from OpenGL.raw.GL.VERSION.GL_1_0 import glReadPixels as raw_read_pixels

    raw_read_pixels(0, 0, width, height, fmt, dtype, ctypes.c_void_p(out.ctypes.data))


def read_array_texture(texture: int, fmt: int, dtype: int, out: np.ndarray) -> None:
    """Every layer of a 2D array texture (level 0) into a C-contiguous (layers, H, W, ...) array."""
    assert out.flags.c_contiguous
    from OpenGL.raw.GL.VERSION.GL_1_0 import glGetTexImage as raw_get_tex_image

    gl.glBindTexture(gl.GL_TEXTURE_2D_ARRAY, texture)
    raw_get_tex_image(gl.GL_TEXTURE_2D_ARRAY, 0, fmt, dtype, ctypes.c_void_p(out.ctypes.data))
    gl.glBindTexture(gl.GL_TEXTURE_2D_ARRAY, 0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals."""
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 0, normals / np.maximum(length, 1e-12), np.array([0.0, 0.0, 1.0]))


def closed_and_volume(vertices: np.ndarray, faces: np.ndarray) -> tuple[bool, float]:
    """(every undirected edge is used equally often in both directions, signed volume in mm^3).

    Vertices at the same position count as one (meshes split along texture seams or for flat shading).
    """
    f = np.asarray(faces, np.int64)
    _, welded = np.unique(np.asarray(vertices), axis=0, return_inverse=True)
    e = welded.reshape(-1)[f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)]
    e = e[e[:, 0] != e[:, 1]]  # edges collapsed by the welding have no direction
    lo, hi = np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])
    _, inverse = np.unique(lo * len(vertices) + hi, return_inverse=True)
    balance = np.bincount(inverse.reshape(-1), weights=np.where(e[:, 0] < e[:, 1], 1.0, -1.0))
    tri = np.asarray(vertices, np.float64)[f]
    volume = float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
    return bool(np.all(balance == 0)), volume


def same_mesh(a: Mesh, b: Mesh) -> bool:
    """Whether two meshes have equal geometry, colours and texture coordinates."""
    for name in ("vertices_mm", "faces", "colors", "uv", "texture"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None):
            return False
        if x is not None and not np.array_equal(np.asarray(x), np.asarray(y)):
            return False
    return True
