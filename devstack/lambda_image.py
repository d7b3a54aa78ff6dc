"""The Lambda base image for ``sam local invoke``, built offline (no container registry is reachable).

``ensure_base_image`` builds ``public.ecr.aws/lambda/python:3.13-<arch>`` (the name SAM CLI looks for
with ``--skip-pull-image``) when it is missing or was built from another recipe. Nothing in the build
executes code of the target architecture (no emulation: about half a minute, not 7-9 minutes):

1. ``mmdebstrap --variant=extract --arch=<arch> --include=python3,ca-certificates,dash,
   coreutils,libstdc++6 trixie`` (Debian trixie's python3 is 3.13, with its dependencies) from the
   apt mirror this machine is configured with, read at run time from ``/etc/apt/sources.list.d/
   *.sources`` or ``/etc/apt/sources.list``: the packages are unpacked, none of their maintainer
   scripts run;
2. what those scripts would have made, made here: the merged-/usr links (``/bin``, ``/lib``,
   ``/sbin``), ``/etc/passwd`` and ``/etc/group`` for root, the CA bundle ``ca-certificates.crt``
   (the concatenated Mozilla certificates) and the standard library's byte code, compiled by this
   host's Python 3.13 (byte code does not depend on the CPU, and without it every cold start under
   emulation compiles the standard library again);
3. PyPI wheels for the target platform (``pip install --only-binary=:all: --platform ... --target``):
   ``awslambdaric`` into ``/var/runtime`` and boto3/botocore into ``/var/lang/lib/python3.13/
   site-packages``, as the real python3.13 runtime provides them; ``/var/runtime/bootstrap`` runs
   ``python3.13 -m awslambdaric "$_HANDLER"``; the runtime's documented environment variables;
4. all of it as one layer, loaded (``docker load``) with an image config that names the architecture.

The image carries the recipe's content hash as a label: a changed recipe rebuilds, an unchanged one
is reused.

``endpoint_image`` derives a throw-away, local-only image from the base that only adds
``AWS_ENDPOINT_URL`` (botocore sends every AWS call there: moto server), for ``--invoke-image``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.docker_engine import DockerEngine, EngineError, require_tools

SUITE = "trixie"
PYTHON = "3.13"
RECIPE_LABEL = "org.ipv6gate.local-lambda.recipe"
# What the real runtime's PYTHONPATH/sys.path order gives: function code, layers, runtime libraries.
PYTHONPATH = ":".join(
    [
        "/var/task",
        f"/opt/python/lib/python{PYTHON}/site-packages",
        "/opt/python",
        f"/var/lang/lib/python{PYTHON}/site-packages",
        "/var/runtime",
    ]
)
RECIPE: dict[str, Any] = {
    "suite": SUITE,
    # extract: unpack the packages and their dependencies, run nothing (see the module docstring).
    "variant": "extract",
    # dash: /bin/sh for the bootstrap; coreutils: SAM CLI's RIE image build runs mv and chmod in it;
    # libstdc++6: awslambdaric's native runtime client links it (minbase had it only through apt).
    "packages": ["python3", "ca-certificates", "dash", "coreutils", "libstdc++6"],
    "links": {"bin": "usr/bin", "lib": "usr/lib", "sbin": "usr/sbin"},
    "files": {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    },
    "ca_bundle": "etc/ssl/certs/ca-certificates.crt",
    "byte_compile": [f"usr/lib/python{PYTHON}", "usr/lib/python3/dist-packages"],
    # /var/runtime: the runtime interface client; /var/lang/...: what the python3.13 runtime ships.
    "runtime_wheels": ["awslambdaric==4.2.2"],
    "sdk_wheels": ["boto3==1.43.108", "botocore==1.43.127"],
    "bootstrap": f'#!/bin/sh\nexec /usr/bin/python{PYTHON} -m awslambdaric "$_HANDLER"\n',
    "env": {
        "LANG": "C.UTF-8",
        "TZ": ":/etc/localtime",
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": ":".join(
            [
                "/var/lang/lib",
                "/lib64",
                "/usr/lib64",
                "/var/runtime",
                "/var/runtime/lib",
                "/var/task",
                "/var/task/lib",
                "/opt/lib",
            ]
        ),
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "PYTHONPATH": PYTHONPATH,
    },
    "workdir": "/var/task",
}
_PIP_PLATFORM = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
_DEB_ARCH = {"arm64": "arm64", "x86_64": "amd64"}


def recipe_hash(arch: str) -> str:
    text = json.dumps({"arch": arch, **RECIPE}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def base_image_name(arch: str) -> str:
    return f"public.ecr.aws/lambda/python:{PYTHON}-{arch}"


# -- the machine's apt mirror ---------------------------------------------------------------------------------


def _deb822_uris(text: str) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every ``Types: deb`` stanza of a deb822 ``.sources`` file."""
    found: list[tuple[str, list[str]]] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            suites = fields.get("suites", "").split()
            found += [(uri, suites) for uri in fields.get("uris", "").split()]
    return found


def _one_line_uris(text: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            found.append((words[1], [words[2]]))
    return found


def apt_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The URI of the machine's Debian archive (not its security or updates suites)."""
    entries: list[tuple[str, list[str]]] = []
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        entries += _deb822_uris(path.read_text(encoding="utf-8", errors="replace"))
    for path in [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            entries += _one_line_uris(path.read_text(encoding="utf-8", errors="replace"))
    for uri, suites in entries:
        if any(not re.search(r"-(security|updates|backports)$", s) for s in suites) and "security" not in uri:
            return uri
    raise EngineError(f"no Debian archive in {apt_dir}/sources.list(.d): mmdebstrap has no mirror to use")


# -- building ---------------------------------------------------------------------------------------------------


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise EngineError(f"{what} failed (exit {proc.returncode}): {tail}")


def _pip_target(target: Path, arch: str, requirements: list[str]) -> None:
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--platform",
            _PIP_PLATFORM[arch],
            "--python-version",
            PYTHON,
            "--implementation",
            "cp",
            "--target",
            str(target),
            *requirements,
        ],
        f"pip install --platform {_PIP_PLATFORM[arch]} {' '.join(requirements)}",
    )


def image_recipe_of(engine: DockerEngine, name: str, arch: str) -> str | None:
    """The recipe hash label of a local image of ``arch``, or None when there is no such image."""
    import docker.errors

    client = engine.client()
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
    finally:
        client.close()
    if image.attrs.get("Architecture") != _DEB_ARCH[arch]:
        return None
    return str((image.labels or {}).get(RECIPE_LABEL, ""))


def ensure_base_image(engine: DockerEngine, arch: str = "arm64", log: Callable[[str], None] = print) -> float:
    """Build the base image unless one from this recipe exists; returns the seconds spent building."""
    name, digest = base_image_name(arch), recipe_hash(arch)
    if image_recipe_of(engine, name, arch) == digest:
        log(f"base image {name} (recipe {digest}) cached")
        return 0.0
    require_tools("mmdebstrap")
    started = time.monotonic()
    log(f"building base image {name} (recipe {digest}): mmdebstrap --variant=extract {SUITE} {arch}, once")
    mirror = apt_mirror()
    with tempfile.TemporaryDirectory(prefix="lambda-image-") as tmp:
        ctx = Path(tmp)
        rootfs = ctx / "rootfs.tar"
        _run(
            [
                "mmdebstrap",
                "--quiet",
                f"--variant={RECIPE['variant']}",
                f"--arch={_DEB_ARCH[arch]}",
                f"--include={','.join(RECIPE['packages'])}",
                SUITE,
                str(rootfs),
                f"deb {mirror} {SUITE} main",
            ],
            f"mmdebstrap {SUITE} ({arch})",
        )
        log(f"  packages unpacked: {rootfs.stat().st_size / 1e6:.0f} MB after {time.monotonic() - started:.0f} s")
        build_from_rootfs(engine, rootfs, arch)
    spent = time.monotonic() - started
    log(f"  base image built in {spent:.0f} s")
    return spent


def _entry(name: str, kind: bytes, mode: int, *, target: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.size, info.linkname = kind, mode, int(time.time()), size, target
    return info


def _add_text(layer: tarfile.TarFile, name: str, payload: bytes, mode: int = 0o644) -> None:
    layer.addfile(_entry(name, tarfile.REGTYPE, mode, size=len(payload)), io.BytesIO(payload))


def compile_python_tree(rootfs: Path, into: Path) -> list[Path]:
    """The byte code of ``RECIPE['byte_compile']``'s trees of ``rootfs``, compiled by this Python.

    The sources are unpacked under ``into`` with their modification times (a timestamp pyc records
    its source's mtime and size, which the image keeps); returns the ``__pycache__`` folders made.
    """
    import compileall
    import py_compile

    if sys.version_info[:2] != tuple(int(n) for n in PYTHON.split(".")):
        raise EngineError(f"the base image's byte code needs Python {PYTHON} on the host, not {sys.version.split()[0]}")
    trees = [str(t) for t in RECIPE["byte_compile"]]
    with tarfile.open(rootfs) as source:
        members = [
            m
            for m in source
            if m.isfile()
            and m.name.endswith(".py")
            and any(m.name.removeprefix("./").startswith(t + "/") for t in trees)
        ]
        source.extractall(into, members=members, filter="data")
    for tree in trees:
        if (into / tree).is_dir():
            compileall.compile_dir(
                into / tree,
                ddir=f"/{tree}",
                quiet=2,
                workers=0,
                invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
            )
    return sorted(p for p in into.rglob("__pycache__") if p.is_dir())


def build_from_rootfs(engine: DockerEngine, rootfs: Path, arch: str) -> None:
    """Steps 2-4 of the recipe: the unpacked packages made runnable, plus the runtime, loaded as the base image.

    dockerd 20.10's ``docker import`` marks every image with the host's architecture (an arm64 root
    would be an "amd64" image, which SAM CLI's ``--platform linux/arm64`` build refuses), so the
    image is written in ``docker save`` form with its config (architecture, environment, entry point,
    recipe label) and loaded: one layer, no build step.
    """
    with tempfile.TemporaryDirectory(prefix="lambda-runtime-") as tmp:
        ctx = Path(tmp)
        _pip_target(ctx / "runtime", arch, list(RECIPE["runtime_wheels"]))
        _pip_target(ctx / "lang", arch, list(RECIPE["sdk_wheels"]))
        bootstrap = ctx / "runtime" / "bootstrap"
        bootstrap.write_text(str(RECIPE["bootstrap"]), encoding="utf-8")
        bootstrap.chmod(0o755)
        layer_path = assemble_layer(rootfs, ctx / "runtime", ctx / "lang", ctx)
        _load(engine, layer_path, base_image_name(arch), arch, {RECIPE_LABEL: recipe_hash(arch)}, ctx)


def assemble_layer(rootfs: Path, runtime: Path, lang: Path, work: Path) -> Path:
    """The image's one layer (``work/layer.tar``): the unpacked packages made runnable (step 2), ``runtime``
    as ``/var/runtime`` and ``lang`` as the runtime's site-packages (step 3)."""
    caches = compile_python_tree(rootfs, work / "rootfs")
    layer_path = work / "layer.tar"

    made = {f"./{name}" for name in (*RECIPE["links"], *RECIPE["files"], RECIPE["ca_bundle"])}
    ours = ("var/runtime", "var/lang")
    certificates: list[bytes] = []
    with tarfile.open(rootfs) as source, tarfile.open(layer_path, "w") as layer:
        for member in source:  # the unpacked packages, less what the runtime provides
            path = member.name.removeprefix("./")
            if any(path == p or path.startswith(p + "/") for p in ours) or f"./{path}" in made:
                continue
            data = source.extractfile(member) if member.isfile() else None
            payload = data.read() if data is not None else b""
            if path.startswith("usr/share/ca-certificates/") and path.endswith(".crt"):
                certificates.append(payload if payload.endswith(b"\n") else payload + b"\n")
            layer.addfile(member, io.BytesIO(payload) if data is not None else None)
        for link, target in RECIPE["links"].items():  # merged /usr, as base-files' postinst would leave it
            layer.addfile(_entry(f"./{link}", tarfile.SYMTYPE, 0o777, target=target))
        for name, text in RECIPE["files"].items():
            _add_text(layer, f"./{name}", str(text).encode())
        if not certificates:
            raise EngineError("the unpacked ca-certificates package has no certificates")
        _add_text(layer, f"./{RECIPE['ca_bundle']}", b"".join(certificates))  # update-ca-certificates' result
        for cache in caches:  # owned by root in the image, whoever compiled it
            layer.add(cache, arcname=f"./{cache.relative_to(work / 'rootfs')}", filter=_as_root)
        for directory in ("./var/lang", "./var/lang/lib", f"./var/lang/lib/python{PYTHON}"):
            layer.addfile(_entry(directory, tarfile.DIRTYPE, 0o755))
        layer.add(runtime, arcname="./var/runtime", filter=_as_root)
        layer.add(lang, arcname=f"./var/lang/lib/python{PYTHON}/site-packages", filter=_as_root)
    return layer_path


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load(engine: DockerEngine, layer: Path, name: str, arch: str, labels: dict[str, str], work: Path) -> None:
    """``docker load`` of a one-layer image whose config says ``arch``."""
    diff_id = _sha256(layer)
    config = {
        "architecture": _DEB_ARCH[arch],
        "os": "linux",
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {
            "Env": [f"{k}={v}" for k, v in RECIPE["env"].items()],
            "WorkingDir": RECIPE["workdir"],
            "Entrypoint": ["/var/runtime/bootstrap"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created_by": f"ipv6gate devstack/lambda_image.py recipe {labels.get(RECIPE_LABEL)}"}],
    }
    config_text = json.dumps(config).encode()
    config_name = f"{hashlib.sha256(config_text).hexdigest()}.json"
    manifest = [{"Config": config_name, "RepoTags": [name], "Layers": [f"{diff_id}/layer.tar"]}]
    archive = work / "image.tar"
    with tarfile.open(archive, "w") as out:
        for member, payload in ((config_name, config_text), ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            out.addfile(info, io.BytesIO(payload))
        out.add(layer, arcname=f"{diff_id}/layer.tar")
    client = engine.client()
    try:
        with archive.open("rb") as data:
            client.images.load(data)
        architecture = client.images.get(name).attrs.get("Architecture")
    finally:
        client.close()
    archive.unlink()
    if architecture != _DEB_ARCH[arch]:
        raise EngineError(f"docker load made a {architecture} image of {name}, not {_DEB_ARCH[arch]}")


def _build(engine: DockerEngine, context: Path, tag: str, arch: str, labels: dict[str, str]) -> None:
    import docker.errors

    client = engine.client()
    try:
        client.images.build(path=str(context), tag=tag, platform=f"linux/{arch}", labels=labels, rm=True, pull=False)
    except docker.errors.BuildError as exc:
        raise EngineError(f"docker build of {tag} failed: {exc.msg}") from exc
    finally:
        client.close()


def endpoint_image(engine: DockerEngine, endpoint_url: str, arch: str = "arm64") -> str:
    """A local-only image: the base plus ``AWS_ENDPOINT_URL`` (no layer; built in about a second)."""
    tag = f"ipv6gate-local/endpoint:{re.sub(r'[^A-Za-z0-9_.-]', '-', endpoint_url.split('://', 1)[-1])}-{arch}"
    with tempfile.TemporaryDirectory(prefix="endpoint-image-") as tmp:
        Path(tmp, "Dockerfile").write_text(
            f"FROM {base_image_name(arch)}\nENV AWS_ENDPOINT_URL={json.dumps(endpoint_url)}\n", encoding="utf-8"
        )
        _build(engine, Path(tmp), tag, arch, {})
    return tag


def remove_endpoint_images(engine: DockerEngine) -> None:
    """The per-run images (and the RIE images SAM CLI derived from them)."""
    client = engine.client()
    try:
        for image in client.images.list():
            for tag in image.tags:
                if tag.startswith("ipv6gate-local/endpoint"):
                    client.images.remove(tag, force=True)
    finally:
        client.close()


if __name__ == "__main__":  # build (or confirm) the image on its own: python -m devstack.lambda_image
    with DockerEngine() as _engine:
        from devstack.docker_engine import ensure_arm64_emulation

        print(ensure_arm64_emulation())
        ensure_base_image(_engine)
