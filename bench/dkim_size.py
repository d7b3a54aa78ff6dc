"""DKIM on large messages: one fresh process per size (``bench/dkim_child.py`` says what it measures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.scenarios import SIZE_SENDER
from bench.world import TENANT, event, message
from devstack import world

CHILD = Path(__file__).resolve().parent / "dkim_child.py"


def parse_size(text: str) -> int:
    """``50K``, ``1M``, ``30M`` (decimal: 30M is 30,000,000 bytes, under SES's 30 MiB) or plain bytes."""
    units = {"K": 1000, "M": 1000_000}
    text = text.strip().upper()
    if text[-1:] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def label(size: int) -> str:
    if size >= 1000_000:
        return f"{size / 1e6:g} MB"
    return f"{size / 1e3:g} KB"


def measure_dkim_sizes(zone_dir: Path, keys: world.Keys, sizes: list[int], workdir: Path) -> list[dict[str, Any]]:
    warm = message(SIZE_SENDER, keys)
    (workdir / "dkim-warm.eml").write_bytes(warm)
    (workdir / "dkim-warm.json").write_text(json.dumps(event(SIZE_SENDER, warm, "warm")), encoding="utf-8")
    rows: list[dict[str, Any]] = []
    for size in sizes:
        raw = message(SIZE_SENDER, keys, size=size)
        (workdir / "dkim-big.eml").write_bytes(raw)
        (workdir / "dkim-big.json").write_text(json.dumps(event(SIZE_SENDER, raw, "big")), encoding="utf-8")
        del raw
        request = {
            "zone_dir": str(zone_dir),
            "tenant": TENANT,
            "warm_message": str(workdir / "dkim-warm.eml"),
            "warm_event": str(workdir / "dkim-warm.json"),
            "message": str(workdir / "dkim-big.eml"),
            "event": str(workdir / "dkim-big.json"),
        }
        request_path, result_path = workdir / "dkim-request.json", workdir / "dkim-result.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        result_path.unlink(missing_ok=True)
        proc = subprocess.run(
            [sys.executable, str(CHILD), str(request_path), str(result_path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0 or not result_path.exists():
            rows.append({"size": size, "label": label(size), "error": proc.stderr[-2000:] or f"exit {proc.returncode}"})
            continue
        row: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
        rows.append({"size": size, "label": label(size), **row})
    return rows
