"""PyNaCl (ed25519) is loaded only when a DKIM key says k=ed25519, though dkimpy imports it at its import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import world
from ipv6gate.checks import lazy_module

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from pathlib import Path
from ipv6gate.checks.dkim import check_dkim
from ipv6gate.dns import Deadline, DnsResolver
from ipv6gate.dns.zones import ZoneBackend

zones, *messages = sys.argv[1:]
resolver = DnsResolver(ZoneBackend.from_directory(zones), query_timeout=1.0, query_limit=60)
seen = ["nacl.bindings" in sys.modules]
for path in messages:
    result = check_dkim(resolver.session(Deadline(5.0)), Path(path).read_bytes(), max_signatures=5)
    seen += [result.result.value, "nacl.bindings" in sys.modules]
print(json.dumps(seen))
"""


def test_ed25519_loads_pynacl_on_first_use(tmp_path: Path, keys: world.Keys) -> None:
    zones = world.write_zone_dir(tmp_path / "zones", keys)
    rsa, ed = tmp_path / "rsa.eml", tmp_path / "ed.eml"
    rsa.write_bytes(world.sign(world.message(), keys))
    ed.write_bytes(world.sign(world.message(), keys, selector="ed", algorithm="ed25519"))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(zones), str(rsa), str(ed)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # Imported with dkimpy: not loaded; an RSA pass: still not; an ed25519 pass: loaded.
    assert json.loads(out.stdout) == [False, "pass", False, "pass", True]


def test_defer_import_of_a_missing_module_fails_like_import() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        lazy_module.defer_import("no_such_module_here")
    assert "no_such_module_here" not in sys.modules


def test_defer_import_keeps_a_module_already_imported() -> None:
    import json as real

    assert lazy_module.defer_import("json") is real
