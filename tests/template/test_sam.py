"""Run the SAM CLI on template.yaml: `sam validate --lint` and a real `sam build`.

No AWS credentials or Docker are needed; `sam build` downloads the layer's
requirements from PyPI and needs a Python 3.13 interpreter on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = "template.yaml"


def _sam() -> str:
    # Prefer the SAM CLI installed next to the running interpreter (the venv's bin dir).
    candidate = Path(sys.executable).parent / "sam"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("sam")
    if not found:
        pytest.fail("SAM CLI not found: install aws-sam-cli into the venv")
    return found


def _probe_python(exe: str) -> Path | None:
    """Directory of the real (non-venv) interpreter behind exe, if it is Python 3.13."""
    code = "import sys; print(sys.version_info[:2] == (3, 13)); print(getattr(sys, '_base_executable', sys.executable))"
    try:
        res = subprocess.run([exe, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    lines = res.stdout.split()
    if res.returncode != 0 or len(lines) < 2 or lines[0] != "True":
        return None
    return Path(lines[1]).parent


def _python313_dir() -> Path:
    candidates: list[str] = []
    if which := shutil.which("python3.13"):  # may be a pyenv shim that refuses to run
        candidates.append(which)
    pyenv = shutil.which("pyenv") or str(Path.home() / ".pyenv" / "bin" / "pyenv")
    if Path(pyenv).is_file():
        prefix = subprocess.run([pyenv, "prefix", "3.13"], capture_output=True, text=True, check=False)
        if prefix.returncode == 0 and prefix.stdout.strip():
            candidates.append(str(Path(prefix.stdout.strip().splitlines()[0]) / "bin" / "python3.13"))
        versions = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        if versions.returncode == 0:
            root = Path(versions.stdout.strip()) / "versions"
            candidates += sorted(str(p) for p in root.glob("3.13*/bin/python3.13"))
    if sys.version_info[:2] == (3, 13):
        candidates.append(sys.executable)
    for exe in candidates:
        if (found := _probe_python(exe)) is not None:
            return found
    pytest.fail(f"no working Python 3.13 interpreter found (tried {candidates})")


def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["SAM_CLI_TELEMETRY"] = "0"
    env.pop("AWS_PROFILE", None)
    if extra_path is not None:
        env["PATH"] = f"{extra_path}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize("region", [None, "eu-west-1", "us-west-2"])
def test_sam_validate_lint(region):
    cmd = [_sam(), "validate", "--lint", "--template", TEMPLATE]
    if region:
        cmd += ["--region", region]
    res = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    assert "is a valid SAM Template" in res.stdout + res.stderr


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sam")
    out = tmp / "build"
    cmd = [
        _sam(),
        "build",
        "--build-dir",
        str(out),
        "--template-file",
        TEMPLATE,
        "--no-cached",
        "--cache-dir",
        str(tmp / "cache"),
    ]
    started = time.monotonic()
    res = subprocess.run(
        cmd, cwd=REPO, env=_env(_python313_dir()), capture_output=True, text=True, timeout=900, check=False
    )
    print(f"sam build took {time.monotonic() - started:.1f} s")
    assert res.returncode == 0, f"sam build failed:\n{res.stdout}\n{res.stderr}"
    return out


def test_sam_build_layer_layout(build_dir):
    layer = build_dir / "IPv6GateLayer"
    assert (layer / "python" / "ipv6gate" / "__init__.py").is_file(), sorted(
        str(p.relative_to(layer)) for p in layer.glob("*/*")
    )
    assert (layer / "python" / "dns" / "__init__.py").is_file(), "dnspython not installed into python/"
    assert list((layer / "python").glob("dnspython-*.dist-info")), "dnspython dist-info missing"
    assert not (layer / "python" / "python").exists(), "nested python/python: layer would not import"


def test_sam_build_function(build_dir):
    assert (build_dir / "GateFunction" / "app.py").is_file()
    assert (build_dir / "BouncerFunction" / "app.py").is_file()
    assert (build_dir / "StackSetupFunction" / "app.py").is_file()
    built = (build_dir / "template.yaml").read_text(encoding="utf-8")
    assert "ContentUri: IPv6GateLayer" in built
    assert "CodeUri: GateFunction" in built
    assert "CodeUri: BouncerFunction" in built
    assert "CodeUri: StackSetupFunction" in built
