"""PLY meshes as BOP ships them (``models/*.ply``, ``models_eval/*.ply``), read into :class:`Mesh`.

Supported: ``ascii``, ``binary_little_endian`` and ``binary_big_endian``; vertex ``x y z`` (mm),
normals ``nx ny nz``, colours ``red green blue`` (``alpha`` ignored), per-vertex texture coordinates
``texture_u texture_v`` (or ``s t``, or ``u v``), faces ``vertex_indices`` (or ``vertex_index``) with
polygons fan-triangulated, per-corner face ``texcoord`` lists, and ``comment TextureFile name.png``
(the texture image is read from the PLY's folder). Other elements and properties are skipped.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bopnp.bop.atomic import write_bytes_atomic
from bopnp.bop.images import save_image
from bopnp.bop.mesh import Mesh
from bopnp.bop.validate import brief
from bopnp.errors import DatasetError

_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_UV_NAMES = (("texture_u", "texture_v"), ("s", "t"), ("u", "v"))


@dataclass
class _Property:
    name: str
    dtype: str  # numpy type code without byte order, e.g. "f4"
    count_dtype: str | None = None  # set for list properties: type of the length prefix


@dataclass
class _Element:
    name: str
    count: int
    properties: list[_Property]


@dataclass
class _Header:
    fmt: str  # "ascii", "binary_little_endian" or "binary_big_endian"
    elements: list[_Element]
    texture_file: str | None
    data_offset: int


def _parse_header(data: bytes, path: Path) -> _Header:
    def fail(why: str) -> DatasetError:
        return DatasetError(
            f"{path}: not a readable PLY file: {why}; re-export it (e.g. with MeshLab) or re-download the models"
        )

    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise fail("missing 'ply' magic or 'end_header'")
    eol = data.find(b"\n", end)
    data_offset = len(data) if eol < 0 else eol + 1
    lines = data[:end].decode("ascii", errors="replace").replace("\r", "").split("\n")
    fmt, elements, texture_file = None, [], None
    for lineno, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words:
            continue
        key = words[0]
        if key == "format":
            if len(words) < 2 or words[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise fail(f"header line {lineno}: unknown format {' '.join(words[1:])!r}")
            fmt = words[1]
        elif key in ("comment", "obj_info"):
            if len(words) >= 3 and words[1] == "TextureFile":
                texture_file = line.split(None, 2)[2].strip()
        elif key == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise fail(f"header line {lineno}: expected 'element NAME COUNT', got {line!r}")
            elements.append(_Element(words[1], int(words[2]), []))
        elif key == "property":
            if not elements:
                raise fail(f"header line {lineno}: property before any element")
            if len(words) == 5 and words[1] == "list":
                if words[2] not in _TYPES or words[3] not in _TYPES:
                    raise fail(f"header line {lineno}: unknown type in {line!r}")
                elements[-1].properties.append(_Property(words[4], _TYPES[words[3]], _TYPES[words[2]]))
            elif len(words) == 3 and words[1] in _TYPES:
                elements[-1].properties.append(_Property(words[2], _TYPES[words[1]]))
            else:
                raise fail(f"header line {lineno}: cannot parse property {line!r}")
        else:
            raise fail(f"header line {lineno}: unknown keyword {key!r}")
    if fmt is None:
        raise fail("no 'format' line")
    return _Header(fmt, elements, texture_file, data_offset)


def _read_ascii(header: _Header, data: bytes, path: Path) -> dict[str, dict[str, np.ndarray | list]]:
    """Each element as {property: (N,) array, or (N, k) array / list of arrays for list properties}."""
    text = data[header.data_offset :].decode("ascii", errors="replace")
    lines = [ln for ln in text.split("\n") if ln.strip()]
    out: dict[str, dict] = {}
    pos = 0
    for el in header.elements:
        rows = lines[pos : pos + el.count]
        pos += el.count
        if len(rows) < el.count:
            raise DatasetError(
                f"{path}: element '{el.name}' declares {el.count} rows but the file ends after {len(rows)}; the file "
                "is truncated, re-download it"
            )
        out[el.name] = _split_rows([r.split() for r in rows], el, path)
    return out


def _split_rows(tokens: list[list[str]], el: _Element, path: Path) -> dict:
    """Columns of an element from its rows of tokens (ascii, or binary slow path as strings)."""
    if not el.properties:
        return {}
    has_list = any(p.count_dtype for p in el.properties)
    widths = {len(t) for t in tokens}
    if not has_list:
        if widths and widths != {len(el.properties)}:
            raise DatasetError(
                f"{path}: element '{el.name}' rows should have {len(el.properties)} values, found rows with "
                f"{sorted(widths)}"
            )
        table = _as_table(tokens, el, path).reshape(len(tokens), len(el.properties))
        return {p.name: table[:, i].astype(p.dtype) for i, p in enumerate(el.properties)}
    if len(widths) == 1 and tokens:
        # uniform rows (the usual all-triangle case): parse as one table
        table = _as_table(tokens, el, path)
        cols, col = {}, 0
        for p in el.properties:
            if p.count_dtype:
                k = int(table[0, col])
                if np.any(table[:, col] != k):
                    break
                cols[p.name] = table[:, col + 1 : col + 1 + k].astype(p.dtype)
                col += 1 + k
            else:
                cols[p.name] = table[:, col].astype(p.dtype)
                col += 1
        else:
            if col == table.shape[1]:
                return cols
    # variable-length lists: row by row
    cols = {p.name: [] for p in el.properties}
    for r, row in enumerate(tokens):
        col = 0
        try:
            for p in el.properties:
                if p.count_dtype:
                    k = int(float(row[col]))
                    cols[p.name].append(np.array(row[col + 1 : col + 1 + k], dtype=np.float64).astype(p.dtype))
                    col += 1 + k
                else:
                    cols[p.name].append(float(row[col]))
                    col += 1
        except (IndexError, ValueError):
            raise DatasetError(f"{path}: element '{el.name}' row {r}: cannot parse {' '.join(row)!r}") from None
    return {p.name: (cols[p.name] if p.count_dtype else np.asarray(cols[p.name], p.dtype)) for p in el.properties}


def _as_table(tokens: list[list[str]], el: _Element, path: Path) -> np.ndarray:
    """Rows of ascii tokens of equal length as a float64 table; DatasetError naming the first bad row."""
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        pass
    for r, row in enumerate(tokens):
        for c, tok in enumerate(row):
            try:
                float(tok)
            except ValueError:
                raise DatasetError(
                    f"{path}: element '{el.name}' row {r}: value {c} is {brief(tok)}, not a number; the file is "
                    "corrupt, re-export it (e.g. with MeshLab) or re-download the models"
                ) from None
    raise DatasetError(f"{path}: element '{el.name}': cannot parse the rows as numbers; re-download the models")


def _check_finite(vert: dict, path: Path) -> None:
    """DatasetError naming the first vertex row with a NaN or infinite coordinate, normal or uv."""
    for name in ("x", "y", "z", "nx", "ny", "nz", *(n for pair in _UV_NAMES for n in pair)):
        col = vert.get(name)
        if col is None or np.asarray(col).dtype.kind != "f":
            continue
        bad = np.flatnonzero(~np.isfinite(col))
        if len(bad):
            raise DatasetError(
                f"{path}: element 'vertex' row {int(bad[0])}: property '{name}' is {float(col[bad[0]])} "
                f"({len(bad)} non-finite value(s) in '{name}'); every coordinate must be a finite number (mm): "
                "repair the mesh or re-download the models"
            )


def _read_binary(header: _Header, data: bytes, path: Path) -> dict[str, dict]:
    bo = "<" if header.fmt == "binary_little_endian" else ">"
    out: dict[str, dict] = {}
    off = header.data_offset
    for el in header.elements:
        has_list = any(p.count_dtype for p in el.properties)
        if not has_list:
            dt = np.dtype([(p.name, bo + p.dtype) for p in el.properties])
            need = dt.itemsize * el.count
            if off + need > len(data):
                raise DatasetError(
                    f"{path}: element '{el.name}' needs {need} bytes but the file ends early; it is truncated, "
                    "re-download it"
                )
            arr = np.frombuffer(data, dtype=dt, count=el.count, offset=off)
            out[el.name] = {p.name: arr[p.name].astype(p.dtype) for p in el.properties}
            off += need
            continue
        parsed = (
            _binary_uniform(el, data, off, bo)
            if el.count
            else ({p.name: np.zeros((0, 3) if p.count_dtype else 0, p.dtype) for p in el.properties}, 0)
        )
        if parsed is None:
            parsed = _binary_rows(el, data, off, bo, path)
        out[el.name], size = parsed
        off += size
    return out


def _binary_uniform(el: _Element, data: bytes, off: int, bo: str):
    """Fast path: every list of the element has the length found in its first row. None if not."""
    fields, pos = [], off
    for p in el.properties:
        if p.count_dtype:
            cnt_dt = np.dtype(bo + p.count_dtype)
            if pos + cnt_dt.itemsize > len(data):
                return None
            k = int(np.frombuffer(data, cnt_dt, 1, pos)[0])
            if k == 0:
                return None
            fields.append((p.name + "#n", cnt_dt))
            fields.append((p.name, np.dtype(bo + p.dtype), (k,)))
            pos += cnt_dt.itemsize + k * np.dtype(p.dtype).itemsize
        else:
            fields.append((p.name, np.dtype(bo + p.dtype)))
            pos += np.dtype(p.dtype).itemsize
    dt = np.dtype(fields)
    if off + dt.itemsize * el.count > len(data):
        return None
    arr = np.frombuffer(data, dtype=dt, count=el.count, offset=off)
    cols = {}
    for p in el.properties:
        if p.count_dtype:
            n = arr[p.name + "#n"]
            k = int(n[0])
            if np.any(n != k):
                return None
            cols[p.name] = arr[p.name].astype(p.dtype)
        else:
            cols[p.name] = arr[p.name].astype(p.dtype)
    return cols, dt.itemsize * el.count


def _binary_rows(el: _Element, data: bytes, off: int, bo: str, path: Path):
    """Slow path: variable-length lists, one row at a time."""
    cols: dict[str, list] = {p.name: [] for p in el.properties}
    pos = off
    try:
        for _ in range(el.count):
            for p in el.properties:
                if p.count_dtype:
                    (k,) = struct.unpack_from(bo + np.dtype(p.count_dtype).char, data, pos)
                    pos += np.dtype(p.count_dtype).itemsize
                    cols[p.name].append(np.frombuffer(data, np.dtype(bo + p.dtype), k, pos).astype(p.dtype))
                    pos += k * np.dtype(p.dtype).itemsize
                else:
                    (v,) = struct.unpack_from(bo + np.dtype(p.dtype).char, data, pos)
                    cols[p.name].append(v)
                    pos += np.dtype(p.dtype).itemsize
    except (struct.error, ValueError):
        raise DatasetError(f"{path}: element '{el.name}' ends early; the file is truncated, re-download it") from None
    return {
        p.name: (cols[p.name] if p.count_dtype else np.asarray(cols[p.name], p.dtype)) for p in el.properties
    }, pos - off


def _triangulate(lists, path: Path) -> np.ndarray:
    """(F, 3) triangles from a list property, fan-triangulating polygons."""
    if isinstance(lists, np.ndarray):
        k = lists.shape[1]
        if k == 3:
            return lists.astype(np.int64)
        if k < 3:
            raise DatasetError(f"{path}: faces have {k} corners; a face needs at least 3")
        tris = [lists[:, [0, i, i + 1]] for i in range(1, k - 1)]
        return np.stack(tris, 1).reshape(-1, 3).astype(np.int64)
    tris = []
    for r, poly in enumerate(lists):
        if len(poly) < 3:
            raise DatasetError(f"{path}: face {r} has {len(poly)} corners; a face needs at least 3")
        tris += [(poly[0], poly[i], poly[i + 1]) for i in range(1, len(poly) - 1)]
    return np.asarray(tris, np.int64).reshape(-1, 3)


def _read_texture(path: Path, name: str) -> np.ndarray:
    import cv2

    tex_path = path.parent / name
    img = cv2.imread(str(tex_path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(
            f"{path}: the header names texture '{name}' but {tex_path} is missing or unreadable; "
            "put the texture next to the PLY, or load with load_texture=False"
        )
    return np.ascontiguousarray(img[:, :, ::-1])


def load_ply(path: str | os.PathLike, *, load_texture: bool = True) -> Mesh:
    """Read a PLY mesh (BOP ``models/`` or ``models_eval/``; coordinates in mm).

    Args:
        path: the ``.ply`` file.
        load_texture: read the image named by ``comment TextureFile`` (relative to the PLY's folder)
            into ``Mesh.texture``.
    Returns:
        A :class:`Mesh`: vertices (V, 3) float32 mm, faces (F, 3) int64, and normals, colours (uint8),
        uv, face_uv and texture where the file has them.
    Raises:
        DatasetError: missing, truncated or malformed file, out-of-range face indices, missing texture.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(
            f"{path} not found: check the dataset's models folder or re-download the models archive"
        ) from None
    header = _parse_header(data, path)
    elems = _read_ascii(header, data, path) if header.fmt == "ascii" else _read_binary(header, data, path)

    vert = elems.get("vertex")
    if vert is None or not {"x", "y", "z"} <= vert.keys():
        raise DatasetError(f"{path}: no 'vertex' element with x, y, z properties; this is not a mesh BOP can use")
    _check_finite(vert, path)
    vertices = np.stack([vert["x"], vert["y"], vert["z"]], 1).astype(np.float32)
    n_vert = len(vertices)

    normals = None
    if {"nx", "ny", "nz"} <= vert.keys():
        normals = np.stack([vert["nx"], vert["ny"], vert["nz"]], 1).astype(np.float32)
    colors = None
    for names in (("red", "green", "blue"), ("diffuse_red", "diffuse_green", "diffuse_blue")):
        if set(names) <= vert.keys():
            c = np.stack([vert[n] for n in names], 1)
            if c.dtype.kind == "f":
                c = c * 255.0 if c.size and c.max() <= 1.0 else c
                c = np.clip(np.round(c), 0, 255)
            colors = c.astype(np.uint8)
            break
    uv = None
    for u, v in _UV_NAMES:
        if {u, v} <= vert.keys():
            uv = np.stack([vert[u], vert[v]], 1).astype(np.float32)
            break

    faces = np.zeros((0, 3), np.int64)
    face_uv = None
    face = elems.get("face")
    if face is not None:
        key = "vertex_indices" if "vertex_indices" in face else "vertex_index" if "vertex_index" in face else None
        if key is None and header.elements and any(e.name == "face" and e.count for e in header.elements):
            raise DatasetError(f"{path}: the 'face' element has no 'vertex_indices' list")
        if key is not None:
            faces = _triangulate(face[key], path)
            if faces.size and (faces.min() < 0 or faces.max() >= n_vert):
                raise DatasetError(
                    f"{path}: face indices must lie in [0, {n_vert}) but span [{faces.min()}, {faces.max()}]; the "
                    "file is corrupt"
                )
            if "texcoord" in face:
                face_uv = _corner_uv(face["texcoord"], face[key], path)

    texture = None
    if header.texture_file is not None and load_texture:
        texture = _read_texture(path, header.texture_file)

    return Mesh(
        vertices_mm=vertices,
        faces=faces,
        normals=normals,
        colors=colors,
        uv=uv,
        texture=texture,
        texture_file=header.texture_file,
        face_uv=face_uv,
    )


def _corner_uv(texcoord, indices, path: Path) -> np.ndarray:
    """(F, 3, 2) per-corner uv of the triangulated faces from the per-polygon ``texcoord`` lists."""
    if isinstance(texcoord, np.ndarray) and isinstance(indices, np.ndarray):
        k = indices.shape[1]
        if texcoord.shape[1] != 2 * k:
            raise DatasetError(
                f"{path}: faces have {k} corners but {texcoord.shape[1]} texcoord values (expected {2 * k})"
            )
        tc = texcoord.reshape(len(texcoord), k, 2).astype(np.float32)
        tris = np.stack([tc[:, [0, i, i + 1]] for i in range(1, k - 1)], 1)
        return tris.reshape(-1, 3, 2)
    out = []
    for r in range(len(indices)):
        k = len(indices[r])
        tc = np.asarray(texcoord[r], np.float32)
        if tc.size != 2 * k:
            raise DatasetError(f"{path}: face {r} has {k} corners but {tc.size} texcoord values (expected {2 * k})")
        tc = tc.reshape(k, 2)
        out += [tc[[0, i, i + 1]] for i in range(1, k - 1)]
    return np.asarray(out, np.float32).reshape(-1, 3, 2)


def save_ply(path: str | os.PathLike, mesh: Mesh, *, binary: bool = False) -> None:
    """Write ``mesh`` as a PLY file (atomically), in the layout BOP uses.

    Writes vertex normals, colours and uv when the mesh has them, per-corner ``texcoord`` when it has
    ``face_uv``, and ``comment TextureFile`` when it names a texture; when ``mesh.texture`` is set the
    image is written next to the PLY under ``mesh.texture_file`` (``texture.png`` if unnamed).

    Args:
        path: destination ``.ply``.
        mesh: the mesh (mm); not modified.
        binary: binary little-endian instead of ascii.
    """
    path = Path(path)
    texture_file = mesh.texture_file
    if mesh.texture is not None and texture_file is None:
        texture_file = "texture.png"
    v = np.asarray(mesh.vertices_mm, np.float32)
    f = np.asarray(mesh.faces, np.int64).reshape(-1, 3)
    n_vert = len(v)
    columns: list[tuple[str, str, np.ndarray]] = [("x", "f4", v[:, 0]), ("y", "f4", v[:, 1]), ("z", "f4", v[:, 2])]
    if mesh.normals is not None:
        n = np.asarray(mesh.normals, np.float32)
        columns += [("nx", "f4", n[:, 0]), ("ny", "f4", n[:, 1]), ("nz", "f4", n[:, 2])]
    if mesh.colors is not None:
        c = np.asarray(mesh.colors, np.uint8)
        columns += [("red", "u1", c[:, 0]), ("green", "u1", c[:, 1]), ("blue", "u1", c[:, 2])]
    if mesh.uv is not None:
        uv = np.asarray(mesh.uv, np.float32)
        columns += [("texture_u", "f4", uv[:, 0]), ("texture_v", "f4", uv[:, 1])]
    for name, _, col in columns:
        if len(col) != n_vert:
            raise DatasetError(f"cannot write {path}: vertex attribute '{name}' has {len(col)} rows, expected {n_vert}")
    face_uv = None if mesh.face_uv is None else np.asarray(mesh.face_uv, np.float32).reshape(-1, 6)

    type_name = {"f4": "float", "u1": "uchar", "i4": "int"}
    head = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0"]
    if texture_file is not None:
        head.append(f"comment TextureFile {texture_file}")
    head.append(f"element vertex {n_vert}")
    head += [f"property {type_name[t]} {name}" for name, t, _ in columns]
    head.append(f"element face {len(f)}")
    head.append("property list uchar int vertex_indices")
    if face_uv is not None:
        head.append("property list uchar float texcoord")
    head.append("end_header")
    buf = io.BytesIO()
    buf.write(("\n".join(head) + "\n").encode("ascii"))

    if binary:
        vdt = np.dtype([(name, "<" + t) for name, t, _ in columns])
        varr = np.empty(n_vert, vdt)
        for name, _, col in columns:
            varr[name] = col
        buf.write(varr.tobytes())
        fields = [("n", "u1"), ("idx", "<i4", (3,))]
        if face_uv is not None:
            fields += [("m", "u1"), ("tc", "<f4", (6,))]
        farr = np.empty(len(f), np.dtype(fields))
        farr["n"] = 3
        farr["idx"] = f
        if face_uv is not None:
            farr["m"] = 6
            farr["tc"] = face_uv
        buf.write(farr.tobytes())
    else:
        if n_vert:
            table = np.stack([col.astype(np.float64) for _, _, col in columns], 1)
            fmt = " ".join("%d" if t == "u1" else "%.9g" for _, t, _ in columns)
            np.savetxt(buf, table, fmt=fmt)
        if len(f):
            ftab = np.concatenate([np.full((len(f), 1), 3), f], 1)
            if face_uv is None:
                np.savetxt(buf, ftab, fmt="%d")
            else:
                lines = [
                    " ".join(map(str, a)) + " 6 " + " ".join(f"{x:.9g}" for x in b)
                    for a, b in zip(ftab.tolist(), face_uv.tolist())
                ]
                buf.write(("\n".join(lines) + "\n").encode("ascii"))
    write_bytes_atomic(path, buf.getvalue())

    if mesh.texture is not None:
        save_image(path.parent / texture_file, mesh.texture)
