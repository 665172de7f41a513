"""A headless OpenGL context over EGL: Mesa (llvmpipe or a GPU driver) or NVIDIA's EGL device platform.

The environment variables ``PYOPENGL_PLATFORM=egl`` and ``EGL_PLATFORM=surfaceless`` must be set before
PyOpenGL is first imported; :func:`configure_environment` sets them unless the user already chose other
values. Importing ``bopnp.render`` changes nothing: the renderer's modules reach PyOpenGL only through
:class:`LazyGLModule` (``GL``, ``GL_SHADERS``), which configures and imports on first use, and
:func:`create_context` configures before anything else. Code that imports PyOpenGL (or pyrender) itself
calls :func:`configure_environment` first (as :mod:`bopnp.render.pyrender_compat` does).

Device choice (:func:`create_context`): ``device=None`` prefers an NVIDIA EGL device (the first one whose
CUDA ordinal is ``$BOPNP_EGL_CUDA_DEVICE`` or 0) and falls back to the default display (Mesa surfaceless
or whatever libglvnd picks), then to the other listed devices. ``device=k`` selects the k-th device that
``eglQueryDevicesEXT`` lists.

Fork: a child process cannot use the display its parent initialised (the driver's threads did not
survive the fork), so a child starts on the next display in the order above (on Mesa the software
device). On GPU machines prefer 'spawn' workers: a forked child may otherwise fall back to CPU rendering.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import threading
from collections.abc import Collection
from dataclasses import dataclass

from bopnp.errors import RenderError

INSTALL_HINT = (
    "Install the EGL/OpenGL runtime (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgles2; "
    "on a GPU machine the NVIDIA driver provides libEGL_nvidia) and set PYOPENGL_PLATFORM=egl and, "
    "for Mesa without a display, EGL_PLATFORM=surfaceless before Python starts."
)

_EGL_PLATFORM_DEVICE_EXT = 0x313F
_EGL_CUDA_DEVICE_NV = 0x323A
_EGL_EXTENSIONS = 0x3055


def preload_bundled_llvm() -> None:
    """Import triton (when installed) before the OpenGL driver loads.

    Mesa's llvmpipe loads the system LLVM into the process's global symbol scope; a library with its
    own copy of LLVM loaded afterwards binds to those symbols and crashes (``import triton``, which
    torch.compile does, segfaults after a software render). Loaded first, triton keeps its own LLVM.
    Set ``BOPNP_PRELOAD_TRITON=0`` to skip (about 0.2 s).
    """
    if os.environ.get("BOPNP_PRELOAD_TRITON", "1") == "0":
        return
    try:
        if importlib.util.find_spec("triton") is not None:
            importlib.import_module("triton")
    except Exception:  # a broken triton install is not the renderer's problem
        pass


def configure_environment() -> None:
    """Select the EGL back end of PyOpenGL (unless the user chose another) before it is imported.

    Sets ``PYOPENGL_PLATFORM=egl`` and ``EGL_PLATFORM=surfaceless`` where they are unset; the renderer calls
    it before its first PyOpenGL import, so only code that imports PyOpenGL itself needs to call it.
    """
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")


class LazyGLModule:
    """A PyOpenGL module imported on first attribute access, after :func:`configure_environment`.

    ``gl = LazyGLModule("OpenGL.GL")`` is used as ``import OpenGL.GL as gl`` would be, but importing the module
    that holds it neither imports PyOpenGL nor touches ``os.environ``. Each attribute is looked up once and then
    kept on the instance, so later calls cost what a module attribute does.
    """

    def __init__(self, name: str) -> None:
        self._module_name = name

    def __getattr__(self, attr: str):
        if attr.startswith("_"):  # not a GL name (copy/pickle probes, or _module_name before __init__)
            raise AttributeError(attr)
        configure_environment()
        value = getattr(importlib.import_module(self._module_name), attr)
        setattr(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"LazyGLModule({self._module_name!r})"


#: ``OpenGL.GL`` and ``OpenGL.GL.shaders``, imported when the renderer first calls them
GL = LazyGLModule("OpenGL.GL")
GL_SHADERS = LazyGLModule("OpenGL.GL.shaders")


def _check_pyopengl_platform() -> None:
    """Raise RenderError when PyOpenGL was imported (by other code) before the EGL platform was chosen."""
    import OpenGL.platform

    name = type(OpenGL.platform.PLATFORM).__name__
    if name != "EGLPlatform":
        raise RenderError(
            f"PyOpenGL was imported with the {name} back end before the renderer could choose EGL: set "
            "PYOPENGL_PLATFORM=egl before Python starts, or call bopnp.render.egl.configure_environment() "
            f"before anything imports OpenGL or pyrender. {INSTALL_HINT}"
        )


@dataclass
class EglContext:
    """An OpenGL 3.3+ core context without a surface; render into framebuffer objects.

    A context is current in at most one thread at a time: callers hold :attr:`lock` while rendering and
    call :meth:`make_current` first (cheap when already current in this thread).
    """

    display: object
    context: object
    device_name: str
    gl_renderer: str = ""
    owner_pid: int = 0
    display_key: str = ""

    def __post_init__(self) -> None:
        self.lock = threading.RLock()

    def make_current(self) -> None:
        from OpenGL import EGL as egl

        if not egl.eglMakeCurrent(self.display, egl.EGL_NO_SURFACE, egl.EGL_NO_SURFACE, self.context):
            raise RenderError(f"eglMakeCurrent failed for the EGL context on {self.device_name}. {INSTALL_HINT}")


def _egl_function(name: str, restype, *argtypes):
    from OpenGL import EGL as egl

    address = egl.eglGetProcAddress(name)
    if not address:
        return None
    proto = ctypes.CFUNCTYPE(restype, *argtypes)
    return proto(address)


def _list_devices() -> list[tuple[ctypes.c_void_p, str, int | None]]:
    """(handle, extension string, CUDA ordinal or None) of every EGL device, [] without the extension."""
    query_devices = _egl_function(
        "eglQueryDevicesEXT", ctypes.c_uint, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int)
    )
    query_string = _egl_function("eglQueryDeviceStringEXT", ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int)
    query_attrib = _egl_function(
        "eglQueryDeviceAttribEXT", ctypes.c_uint, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_ssize_t)
    )
    if query_devices is None:
        return []
    count = ctypes.c_int(0)
    if not query_devices(0, None, ctypes.byref(count)) or count.value < 1:
        return []
    handles = (ctypes.c_void_p * count.value)()
    if not query_devices(count.value, handles, ctypes.byref(count)):
        return []
    devices = []
    for handle in handles[: count.value]:
        extensions = ""
        if query_string is not None:
            extensions = (query_string(handle, _EGL_EXTENSIONS) or b"").decode("ascii", "replace")
        cuda = None
        if "EGL_NV_device_cuda" in extensions and query_attrib is not None:
            value = ctypes.c_ssize_t(-1)
            if query_attrib(handle, _EGL_CUDA_DEVICE_NV, ctypes.byref(value)):
                cuda = int(value.value)
        devices.append((ctypes.c_void_p(handle), extensions, cuda))
    return devices


def _platform_display(handle: ctypes.c_void_p):
    from OpenGL import EGL as egl

    get_display = _egl_function(
        "eglGetPlatformDisplayEXT", egl.EGLDisplay, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p
    )
    if get_display is None:
        return None
    display = get_display(_EGL_PLATFORM_DEVICE_EXT, handle, None)
    return display if display else None


def _choose_display(device: int | None, avoid: Collection[str] = ()):
    """(EGLDisplay, description, key) for the requested device (see the module docstring), skipping
    the displays named in ``avoid`` (those that forked ancestors initialised: their driver threads are gone)."""
    from OpenGL import EGL as egl

    devices = _list_devices()
    if device is not None:
        if device < 0 or device >= len(devices):
            raise RenderError(
                f"EGL device {device} requested but {len(devices)} EGL device(s) are listed; choose "
                f"0..{len(devices) - 1} or None."
            )
        order = [device]
    else:
        want = int(os.environ.get("BOPNP_EGL_CUDA_DEVICE", "0"))
        nvidia = sorted((k for k, d in enumerate(devices) if d[2] is not None), key=lambda k: devices[k][2] != want)
        order = nvidia + [None] + [k for k in range(len(devices)) if k not in nvidia]
    for k in order:
        key = "default" if k is None else f"device:{k}"
        if key in avoid:
            continue
        if k is None:
            return egl.eglGetDisplay(egl.EGL_DEFAULT_DISPLAY), "default EGL display", key
        display = _platform_display(devices[k][0])
        if display is not None:
            cuda = devices[k][2]
            return display, (f"NVIDIA EGL device {k} (CUDA {cuda})" if cuda is not None else f"EGL device {k}"), key
    if avoid:
        raise RenderError(
            "this process was forked from one that had already started OpenGL, and no other EGL display is "
            "available to start afresh. Start worker processes with the 'spawn' or 'forkserver' method "
            "(e.g. DataLoader(multiprocessing_context='spawn')), or render only in the workers."
        )
    raise RenderError(f"eglGetPlatformDisplayEXT failed for EGL device {device}. {INSTALL_HINT}")


def create_context(device: int | None = None, *, avoid_displays: Collection[str] = ()) -> EglContext:
    """Create and make current a headless OpenGL (>= 3.3 core) context.

    Args:
        device: index into the EGL device list, or None for the automatic choice (module docstring).
        avoid_displays: :attr:`EglContext.display_key` of displays not to use (those initialised
            before a fork).
    Raises:
        RenderError: EGL or OpenGL could not start; the message says what to install and set.
    """
    configure_environment()
    preload_bundled_llvm()
    if os.environ.get("PYOPENGL_PLATFORM") != "egl":
        raise RenderError(
            f"PYOPENGL_PLATFORM is {os.environ.get('PYOPENGL_PLATFORM')!r}; the headless renderer needs 'egl'. "
            f"Unset it or set PYOPENGL_PLATFORM=egl before Python starts. {INSTALL_HINT}"
        )
    try:
        import OpenGL.platform  # noqa: F401  (picks the back end, unless other code imported it before)
    except Exception as exc:  # missing libEGL / libGL raise various errors
        raise RenderError(f"could not load EGL/OpenGL ({exc}). {INSTALL_HINT}") from exc
    _check_pyopengl_platform()
    try:
        import OpenGL.GL as gl
        from OpenGL import EGL as egl
    except Exception as exc:
        raise RenderError(f"could not load EGL/OpenGL ({exc}). {INSTALL_HINT}") from exc

    try:
        display, description, key = _choose_display(device, tuple(avoid_displays))
        if not display:
            raise RenderError(f"no EGL display ({description}). {INSTALL_HINT}")
        major, minor = egl.EGLint(), egl.EGLint()
        if not egl.eglInitialize(display, ctypes.pointer(major), ctypes.pointer(minor)):
            raise RenderError(f"eglInitialize failed on the {description}. {INSTALL_HINT}")
        config = egl.EGLConfig()
        n_configs = egl.EGLint()
        config_attribs = (egl.EGLint * 5)(
            egl.EGL_SURFACE_TYPE, egl.EGL_PBUFFER_BIT, egl.EGL_RENDERABLE_TYPE, egl.EGL_OPENGL_BIT, egl.EGL_NONE
        )
        if (
            not egl.eglChooseConfig(display, config_attribs, ctypes.pointer(config), 1, ctypes.pointer(n_configs))
            or n_configs.value < 1
        ):
            raise RenderError(f"no EGL config with desktop OpenGL on the {description}. {INSTALL_HINT}")
        if not egl.eglBindAPI(egl.EGL_OPENGL_API):
            raise RenderError(f"eglBindAPI(EGL_OPENGL_API) failed on the {description}. {INSTALL_HINT}")
        context = egl.EGL_NO_CONTEXT
        for version in ((4, 5), (4, 1), (3, 3)):
            attribs = (egl.EGLint * 7)(
                egl.EGL_CONTEXT_MAJOR_VERSION,
                version[0],
                egl.EGL_CONTEXT_MINOR_VERSION,
                version[1],
                egl.EGL_CONTEXT_OPENGL_PROFILE_MASK,
                egl.EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
                egl.EGL_NONE,
            )
            context = egl.eglCreateContext(display, config, egl.EGL_NO_CONTEXT, attribs)
            if context:
                break
        if not context:
            raise RenderError(f"could not create an OpenGL >= 3.3 core context on the {description}. {INSTALL_HINT}")
        ctx = EglContext(
            display=display, context=context, device_name=description, owner_pid=os.getpid(), display_key=key
        )
        ctx.make_current()
        ctx.gl_renderer = gl.glGetString(gl.GL_RENDERER).decode("ascii", "replace")
    except RenderError:
        raise
    except Exception as exc:
        raise RenderError(f"EGL context creation failed ({type(exc).__name__}: {exc}). {INSTALL_HINT}") from exc
    return ctx
