"""A courier process loads what its transport needs: one that relays never resolves a mail
host, so it goes without dnspython (3.4 MB in each courier)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "shop"

LOADS_DNS = """
import sys
from pathlib import Path
from mailpulse.project import load_project
from mailpulse.runtime.courier_parts import local_courier
local_courier(load_project(Path(sys.argv[1])))
print("dns" in sys.modules)
"""


def loads_dns(project: Path) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", LOADS_DNS, str(project)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip() == "True"


def test_a_relaying_courier_goes_without_dnspython_and_one_to_mail_hosts_has_it(
    tmp_path: Path,
) -> None:
    assert not loads_dns(EXAMPLE)
    direct = shutil.copytree(EXAMPLE, tmp_path / "shop")
    toml = direct / "mailpulse.toml"
    toml.write_text(toml.read_text().replace("[smtp]\n", '[smtp]\nroute = "mx"\n'))
    assert loads_dns(direct)
