"""A courier process loads what its transport needs: one that relays never resolves a mail
host, so it goes without dnspython."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.runtime.heavy_modules import EXAMPLE, heavy_modules_after

COURIER = """
from pathlib import Path
from mailpulse.project import load_project
from mailpulse.runtime.courier_parts import local_courier
local_courier(load_project(Path(sys.argv[1])))
"""


def test_a_relaying_courier_goes_without_dnspython_and_one_to_mail_hosts_has_it(
    tmp_path: Path,
) -> None:
    assert "dns" not in heavy_modules_after(COURIER, str(EXAMPLE))
    direct = shutil.copytree(EXAMPLE, tmp_path / "shop")
    toml = direct / "mailpulse.toml"
    toml.write_text(toml.read_text().replace("[smtp]\n", '[smtp]\nroute = "mx"\n'))
    assert "dns" in heavy_modules_after(COURIER, str(direct))
