"""The gate's code as ``sam build`` ships it, built here for the cold-start runs, with and without byte code.

The layer's and the function's own Makefiles (``template.yaml``: ``BuildMethod: makefile``) run in a
copy of their folders, as ``sam build`` runs them, with ``ARCH`` set to this machine's so that the
native wheels (PyNaCl, cffi) load here. ``without_bytecode`` is the same tree with every
``__pycache__`` removed: what the layer was before it shipped byte code. The children run with
``PYTHONDONTWRITEBYTECODE=1``, since Lambda's /opt and /var/task are read-only.

``runtime_sdk`` is what the python3.13 runtime adds: boto3 and botocore (the versions of the local
Lambda image, ``devstack/lambda_image.RECIPE``) with their dependencies and byte code, and nothing else
of this venv (no awscrt or pyOpenSSL, which botocore would import when it finds them).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from devstack.lambda_image import RECIPE

REPO = Path(__file__).resolve().parents[1]
LAYER_SOURCE = REPO / "layers" / "ipv6gate"


@dataclass(frozen=True)
class BuiltCode:
    function: Path  # what Lambda mounts at /var/task
    layer: Path  # what it mounts at /opt: the layer's python/ folder is on sys.path

    runtime: Path  # the runtime's own site-packages (boto3, botocore)

    @property
    def sys_path(self) -> list[str]:
        return [str(self.function), str(self.layer / "python"), str(self.runtime)]


def _make(source: Path, target: str, artifacts: Path, scratch: Path) -> None:
    shutil.copytree(source, scratch, ignore=shutil.ignore_patterns("__pycache__"))
    artifacts.mkdir(parents=True)
    variables = [f"ARTIFACTS_DIR={artifacts}", f"PYTHON={sys.executable}", f"ARCH={platform.machine()}"]
    proc = subprocess.run(
        ["make", "--no-print-directory", "-f", "Makefile", target, *variables],
        cwd=scratch,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"make {target} in {source} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")


def runtime_sdk(target: Path) -> Path:
    sdk = [str(w) for w in RECIPE["sdk_wheels"]]
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    proc = subprocess.run(
        [*pip, "--target", str(target), *sdk],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(sdk)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return target


def build(code_uri: Path, logical_id: str, workdir: Path) -> tuple[BuiltCode, BuiltCode]:
    """(with byte code, without) for the function at ``code_uri`` and the layer."""
    runtime = runtime_sdk(workdir / "runtime")
    built = BuiltCode(workdir / "built" / logical_id, workdir / "built" / "IPv6GateLayer", runtime)
    _make(code_uri, f"build-{logical_id}", built.function, workdir / "scratch" / logical_id)
    _make(LAYER_SOURCE, "build-IPv6GateLayer", built.layer, workdir / "scratch" / "IPv6GateLayer")
    source_only = BuiltCode(workdir / "no-pyc" / logical_id, workdir / "no-pyc" / "IPv6GateLayer", runtime)
    for there, here in ((built.function, source_only.function), (built.layer, source_only.layer)):
        shutil.copytree(there, here, ignore=shutil.ignore_patterns("__pycache__"))
    return built, source_only
