"""The blocks an operator copies from a docs page, read from the page itself, and strict readers for them.

A block is named by the second word of its fence's info string (```` ```conf main.cf ````); the first
word stays the language for rendering. The readers refuse what the real consumer would misread
rather than what it would reject: Postfix takes ``name = value  # note`` as the value
``value  # note``, so ``main_cf`` refuses any ``#`` after a value.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMTP_TIME = ROOT / "docs" / "smtp-time.md"

_FENCE = re.compile(r"^```(\S+)[ \t]+(\S+)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def blocks(page: Path = SMTP_TIME) -> dict[str, str]:
    """Every named block of ``page``: name -> text (ends with a newline)."""
    found: dict[str, str] = {}
    for m in _FENCE.finditer(page.read_text(encoding="utf-8")):
        if m[2] in found:
            raise ValueError(f"{page.name}: two blocks named {m[2]!r}")
        found[m[2]] = m[3]
    return found


def main_cf(text: str) -> dict[str, str]:
    """Postfix main.cf lines -> {parameter: value}; ``ValueError`` names a line Postfix would misread."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            raise ValueError(f"main.cf line {number}: starts with white space, so Postfix joins it to the line above")
        m = re.fullmatch(r"([A-Za-z0-9_]+)\s*=\s*(.*?)\s*", line)
        if not m:
            raise ValueError(f"main.cf line {number}: not 'name = value': {line!r}")
        if "#" in m[2]:
            raise ValueError(
                f"main.cf line {number}: '#' inside the value of {m[1]} (main.cf has no end-of-line comments): {line!r}"
            )
        if m[1] in values:
            raise ValueError(f"main.cf line {number}: {m[1]} set twice")
        values[m[1]] = m[2]
    return values


def unit_file(text: str) -> dict[str, list[str]]:
    """A systemd unit -> {"Section.Key": [values in order]} (keys such as ExecStartPre repeat)."""
    section = ""
    entries: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return entries


def env_file(text: str) -> dict[str, str]:
    """systemd EnvironmentFile lines (``NAME=value``, comments on their own lines) -> {name: value}."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(\S*)", line)
        if not m:
            raise ValueError(f"environment file line {number}: not NAME=value: {line!r}")
        env[m[1]] = m[2]
    return env


def commands(text: str) -> list[list[str]]:
    """A shell block's command lines, each split as the shell would (no pipes or variables are used)."""
    return [shlex.split(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def exec_line(value: str) -> tuple[bool, list[str]]:
    """A unit's ``Exec*=`` value -> (runs with full privileges ('+' prefix), argv)."""
    privileged = value.startswith("+")
    return privileged, shlex.split(value.lstrip("+-@:!"))
