"""Run the SAM CLI on template.yaml: `sam validate --lint` and a real `sam build`.

No AWS credentials or Docker are needed; `sam build` downloads the layer's
requirements from PyPI and needs a Python 3.13 interpreter on PATH.
"""

from __future__ import annotations

import importlib.util
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


def _stale_or_missing_pycs(root: Path) -> list[str]:
    """Every .py under root without an unchecked-hash .pyc of this Python (3.13, the runtime's) matching it."""
    problems: list[str] = []
    for source in sorted(root.rglob("*.py")):
        pyc = Path(importlib.util.cache_from_source(str(source)))
        if not pyc.is_file():
            problems.append(f"{source.relative_to(root)}: no {pyc.name}")
            continue
        header = pyc.read_bytes()[:16]
        flags = int.from_bytes(header[4:8], "little")
        if header[:4] != importlib.util.MAGIC_NUMBER:
            problems.append(f"{source.relative_to(root)}: magic {header[:4].hex()}")
        elif flags != 0b01:  # hash-based, source not checked at import
            problems.append(f"{source.relative_to(root)}: flags {flags:#b}, not unchecked-hash")
        elif header[8:16] != importlib.util.source_hash(source.read_bytes()):
            problems.append(f"{source.relative_to(root)}: hash does not match the source")
    return problems


def test_sam_build_ships_bytecode_for_the_runtime(build_dir):
    """Lambda mounts /opt and /var/task read-only: the build brings a .pyc for every module, for python3.13."""
    assert sys.version_info[:2] == (3, 13), "the runtime is python3.13: its magic number is this Python's"
    layer = build_dir / "IPv6GateLayer" / "python"
    sources = {p.relative_to(layer).parts[0] for p in layer.rglob("*.py")}
    assert {"ipv6gate", "dns", "dkim", "nacl", "aws_lambda_powertools", "spf.py"} <= sources
    assert _stale_or_missing_pycs(layer) == []
    for function in ("GateFunction", "BouncerFunction", "StackSetupFunction"):
        assert _stale_or_missing_pycs(build_dir / function) == [], function
        assert not (build_dir / function / "Makefile").exists(), f"{function}: the Makefile was shipped"
    # Native parts are the runtime's (aarch64), not this machine's.
    natives = [p.name for p in layer.rglob("*.so")]
    assert natives and all("aarch64" in n or n.endswith(".abi3.so") for n in natives), natives
    assert all("x86_64" not in n for n in natives), natives


def test_a_stale_pyc_is_found(tmp_path):
    """The check above fails on a .pyc that no longer matches its source (and on a missing one)."""
    import py_compile

    source = tmp_path / "mod.py"
    source.write_text("x = 1\n", encoding="utf-8")
    pyc_name = Path(importlib.util.cache_from_source(str(source))).name
    assert _stale_or_missing_pycs(tmp_path) == [f"mod.py: no {pyc_name}"]
    py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    assert _stale_or_missing_pycs(tmp_path) == []
    source.write_text("x = 2\n", encoding="utf-8")
    assert _stale_or_missing_pycs(tmp_path) == ["mod.py: hash does not match the source"]
    py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    assert _stale_or_missing_pycs(tmp_path) == ["mod.py: flags 0b0, not unchecked-hash"]


@pytest.mark.parametrize("folder,target", [("layers/ipv6gate", "IPv6GateLayer"), ("functions/gate", "GateFunction")])
def test_build_with_another_python_is_one_line_and_builds_nothing(tmp_path: Path, folder: str, target: str) -> None:
    """The .pyc files only serve the Python that wrote them: a build by another version stops first."""
    fake = tmp_path / "bin" / "python3"  # a Python that says it is 3.12
    fake.parent.mkdir()
    pretend = "import sys; sys.version_info = (3, 12, 9, 'final', 0); sys.version = '3.12.9'; exec(sys.argv[1])"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -c "{pretend}" "$2"\n', encoding="utf-8")
    fake.chmod(0o755)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    res = subprocess.run(
        ["make", "--no-print-directory", "-f", "Makefile", f"build-{target}", f"PYTHON={fake}"],
        cwd=REPO / folder,
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode != 0
    what = "layer" if target.endswith("Layer") else "function"
    assert res.stderr.splitlines()[0] == (  # it names the interpreter's own executable
        f"sam build: {sys.executable} is Python 3.12.9, the {what} is for python3.13: put a Python 3.13 first on PATH"
    )
    assert list(artifacts.iterdir()) == []
