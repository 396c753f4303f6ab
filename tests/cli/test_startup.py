"""The jaxdiff process pauses Python's collector while it starts and turns it back on once JAX is set up."""

from __future__ import annotations

import gc
import subprocess
import sys

from jaxdiff_cli import startup

from ..conftest import CONFIGS


def test_pause_then_settle_freezes_what_exists_and_collects_again() -> None:
    assert gc.isenabled()
    try:
        startup.pause_gc()
        assert not gc.isenabled()
        startup.settled()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        startup.settled()  # a second spec of the same process changes nothing
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


def test_settled_does_nothing_where_jaxdiff_did_not_pause() -> None:
    # An embedding program or pytest: its collector is its own.
    startup.settled()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_command_leaves_the_collector_on_once_jax_is_set_up() -> None:
    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('gc', gc.isenabled(), gc.get_freeze_count() > 0))\n"
        "sys.argv = ['jaxdiff'] + sys.argv[1:]\n"
        "from jaxdiff_cli.cli import main\n"
        "main()\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe, "jvp", str(CONFIGS / "seed000_poly.yaml"), "--json", "--no-cache"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().endswith("gc True True")
