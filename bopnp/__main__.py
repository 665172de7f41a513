"""``python -m bopnp``: the ``bopnp`` command, also from a checkout that is not installed (with the
checkout on ``PYTHONPATH``)."""

from bopnp.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="bopnp")
