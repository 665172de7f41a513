import os
import stat

from bopnp.bop.atomic import write_bytes_atomic


def test_atomic_write_gives_the_permissions_of_a_plain_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"x")
    atomic = tmp_path / "sub" / "atomic.txt"
    write_bytes_atomic(atomic, b"x")
    assert stat.S_IMODE(os.stat(atomic).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
    assert not [p for p in atomic.parent.iterdir() if p.name.startswith(".")], "temporary file left behind"
