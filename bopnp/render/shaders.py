"""GLSL programs of the renderer. Every vertex shader takes model-frame positions in mm and a
model-to-camera transform in the OpenCV camera frame (x right, y down, z forward); the projection
(:func:`bopnp.render.renderer.projection_matrix`) maps pixel rows top-down onto framebuffer rows, so a
read-back framebuffer is already in image order."""

from __future__ import annotations

# Pass "visible": depth-tested; writes model-frame xyz + camera depth, the instance index and optionally colour.
VISIBLE_VS = """#version 330 core
layout(location = 0) in vec3 a_pos_m;      // model frame, mm
layout(location = 1) in vec3 a_normal_m;   // model frame, unit
layout(location = 2) in vec3 a_color;      // [0, 1]
layout(location = 3) in vec2 a_uv;
uniform mat4 u_mvp;         // model -> clip
uniform mat4 u_mv;          // model -> OpenCV camera, mm
out vec3 v_xyz_m;
out float v_depth;
#ifdef WITH_RGB
out vec3 v_pos_c;
out vec3 v_normal_c;
out vec3 v_color;
out vec2 v_uv;
#endif
void main() {
    vec4 p_c = u_mv * vec4(a_pos_m, 1.0);
    v_xyz_m = a_pos_m;
    v_depth = p_c.z;
#ifdef WITH_RGB
    v_pos_c = p_c.xyz;
    v_normal_c = mat3(u_mv) * a_normal_m;
    v_color = a_color;
    v_uv = a_uv;
#endif
    gl_Position = u_mvp * vec4(a_pos_m, 1.0);
}
"""

VISIBLE_FS = """#version 330 core
in vec3 v_xyz_m;
in float v_depth;
#ifdef WITH_RGB
in vec3 v_pos_c;
in vec3 v_normal_c;
in vec3 v_color;
in vec2 v_uv;
#endif
uniform int u_index;
uniform vec3 u_centre_m;        // bounding-box centre, mm
uniform vec3 u_half_extent_m;   // bounding-box half size, mm
layout(location = 0) out vec4 o_xyz;         // model frame, mm
layout(location = 1) out int o_index;
layout(location = 2) out float o_depth;      // along the optical axis, mm
layout(location = 3) out vec4 o_xyz_norm;    // per-axis bounding-box normalised xyz, [-1, 1]
#ifdef WITH_RGB
uniform int u_use_texture;
uniform sampler2D u_texture;
uniform float u_ambient;
uniform vec3 u_dir_light_c;      // unit direction the light travels, camera frame
uniform float u_dir_intensity;
uniform vec3 u_point_pos_c;      // mm, camera frame
uniform float u_point_intensity;
uniform float u_specular;
uniform float u_shininess;
layout(location = 4) out vec4 o_rgb;
#endif
#ifdef WITH_BITS
// Full masks in the same pass: every rasterised fragment ORs its instance's bit into a per-pixel word,
// whether or not it then passes the depth test (image stores turn early depth testing off).
layout(r32ui, binding = 0) uniform uimage2DArray u_bits;
uniform uint u_bit;
uniform int u_word;             // -1: this instance needs no full mask
#endif
void main() {
    o_xyz = vec4(v_xyz_m, 1.0);
    o_index = u_index;
    o_depth = v_depth;
    o_xyz_norm = vec4(clamp((v_xyz_m - u_centre_m) / u_half_extent_m, -1.0, 1.0), 1.0);
#ifdef WITH_BITS
    if (u_word >= 0) imageAtomicOr(u_bits, ivec3(ivec2(gl_FragCoord.xy), u_word), u_bit);
#endif
#ifdef WITH_RGB
    vec3 albedo = u_use_texture == 1 ? texture(u_texture, v_uv).rgb : v_color;
    vec3 view = normalize(-v_pos_c);
    vec3 n = normalize(v_normal_c);
    if (dot(n, view) < 0.0) n = -n;              // two-sided: meshes need not be consistently oriented
    float diffuse = u_dir_intensity * max(dot(n, -u_dir_light_c), 0.0);
    vec3 to_point = normalize(u_point_pos_c - v_pos_c);
    diffuse += u_point_intensity * max(dot(n, to_point), 0.0);
    float spec = 0.0;
    if (u_specular > 0.0) {
        vec3 h1 = normalize(-u_dir_light_c + view);
        vec3 h2 = normalize(to_point + view);
        spec = u_specular * (u_dir_intensity * pow(max(dot(n, h1), 0.0), u_shininess)
                             + u_point_intensity * pow(max(dot(n, h2), 0.0), u_shininess));
    }
    o_rgb = vec4(clamp(albedo * (u_ambient + diffuse) + vec3(spec), 0.0, 1.0), 1.0);
#endif
}
"""

# Pass "full": no depth test; ORs the instance's bit into a 128-bit mask per pixel
# (instances 32k .. 32k+31 in component k).
FULL_VS = """#version 330 core
layout(location = 0) in vec3 a_pos_m;
uniform mat4 u_mvp;
void main() { gl_Position = u_mvp * vec4(a_pos_m, 1.0); }
"""

FULL_FS = """#version 330 core
uniform uvec4 u_bits;
layout(location = 0) out uvec4 o_bits;
void main() { o_bits = u_bits; }
"""

# Pass "depth": one instance per array-texture layer, depth-tested; writes depth along the optical axis (mm).
DEPTH_VS = """#version 330 core
layout(location = 0) in vec3 a_pos_m;
uniform mat4 u_mvp;
uniform mat4 u_mv;
out float v_depth;
void main() {
    v_depth = (u_mv * vec4(a_pos_m, 1.0)).z;
    gl_Position = u_mvp * vec4(a_pos_m, 1.0);
}
"""

DEPTH_FS = """#version 330 core
in float v_depth;
layout(location = 0) out float o_depth;
void main() { o_depth = v_depth; }
"""


def with_defines(source: str, *defines: str, version: str | None = None) -> str:
    """Insert ``#define NAME`` lines after the ``#version`` line, optionally raising the version."""
    first, rest = source.split("\n", 1)
    if version is not None:
        first = f"#version {version}"
    return "\n".join([first, *(f"#define {d}" for d in defines), rest])
