"""The soak (``make fuzz``) stays runnable and green: a short run of it on every CI.

The soak's own invariants once drifted from the core (a lost bounce lets a rejected message through
by design) and nobody noticed, because only ``make fuzz`` ran it. Exit status 0 means no escaped
exception and no malformed decision in the run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_finds_no_malformed_decision() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "fuzz.soak", "--events", "600", "--seed", "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "events:                      600" in run.stdout
