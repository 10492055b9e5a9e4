"""Build and run the worker's image without a daemon: Debian's ``buildah`` and ``mmdebstrap``.

No Docker engine runs here and no image registry is reachable, so the base images are made from
Debian's packages: one ``mmdebstrap`` run writes two root filesystems, the runtime base (``python3``)
and, from the same tree with pip and venv added, the build base. Both tarballs are cache, keyed by
what they contain (suite, packages, dpkg options), and so is buildah's storage with its layers:
a second build reuses the bases and every unchanged layer.

``buildah run --isolation chroot`` starts the image's processes; it shares the host's network, so
loopback addresses of the local stack work inside. (``podman run`` needs cgroups it cannot get here.)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import paths

HINT = "install Debian's buildah and mmdebstrap (apt-get install buildah mmdebstrap; scripts/dev setup does)"

SUITE = "bookworm"  # python3 is 3.11, as in the Dockerfile's default python:3.11-slim-bookworm
MIRROR = "http://deb.debian.org/debian"
#: ca-certificates: the python: images carry it, and a worker reaching a search engine or an API
#: server through a public CA needs it.
RUNTIME_PACKAGES = ("python3", "ca-certificates")
BUILD_PACKAGES = ("python3-pip", "python3-venv")
#: unsafe-io: dpkg's fsync per file is most of a cold bootstrap and the tree is thrown away on failure.
#: Docs, man pages and translations are not read in a container.
DPKG_OPTIONS = (
    "force-unsafe-io",
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)
#: Raised when the recipe below changes in a way the lists above do not show.
RECIPE = 1
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The host's trust store, bind-mounted over the build base's during RUN steps: pip then trusts
#: whatever the host trusts (a TLS-inspecting egress proxy included), and nothing of it is kept.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class ImageError(RuntimeError):
    """A buildah or mmdebstrap command failed (its output's tail is in the message)."""


def cache() -> Path:
    return paths.cache_dir() / "image"


@dataclass(frozen=True)
class Buildah:
    """buildah with a storage of the project's own under the cache, away from the system's."""

    root: Path

    def argv(self, *args: str) -> list[str]:
        binary = shutil.which("buildah")
        if binary is None:
            raise ImageError(f"buildah not found: {HINT}")
        return [binary, "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"), *args]

    def run(self, *args: str, timeout: float = 600.0, log: Path | None = None) -> str:
        """stdout of ``buildah args``; with ``log`` both streams go there as well."""
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, check=False)
        if log is not None:
            with log.open("a") as out:
                out.write(f"$ buildah {' '.join(args)}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
            raise ImageError(f"buildah {' '.join(args[:2])} failed ({proc.returncode}):\n{tail}")
        return proc.stdout.strip()

    def has_image(self, name: str) -> bool:
        proc = subprocess.run(
            self.argv("inspect", "--type", "image", name), capture_output=True, timeout=60, check=False
        )
        return proc.returncode == 0

    def image_config(self, name: str) -> dict[str, Any]:
        """The image's OCI config (Entrypoint, Cmd, User, Env, WorkingDir, ...)."""
        config: dict[str, Any] = json.loads(self.run("inspect", "--type", "image", name))["OCIv1"]["config"]
        return config

    def image_size(self, name: str) -> str:
        """The image's size as ``buildah images`` gives it (uncompressed layers, e.g. "417 MB")."""
        rows = json.loads(self.run("images", "--json", name))
        return str(rows[0]["size"])

    @contextlib.contextmanager
    def container(self, image: str) -> Iterator[str]:
        """A working container of ``image``, removed afterwards."""
        name = self.run("from", "--pull=never", image)
        try:
            yield name
        finally:
            with contextlib.suppress(ImageError, subprocess.TimeoutExpired):
                self.run("rm", name, timeout=120)

    def run_argv(
        self,
        container: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        volumes: Sequence[tuple[Path, str]] = (),
    ) -> list[str]:
        """The argv that runs ``command`` in ``container`` as the image's user, on the host's network."""
        args = ["run", "--isolation", "chroot"]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        for source, target in volumes:
            args += ["--volume", f"{source}:{target}:ro"]
        return self.argv(*args, container, "--", *command)


def store() -> Buildah:
    return Buildah(cache() / "buildah")


def problem() -> str | None:
    """Why buildah cannot build and run images here, or None: both tools present, and buildah can
    make a container from scratch in its own storage."""
    for tool in ("buildah", "mmdebstrap"):
        if shutil.which(tool) is None:
            return f"{tool} not found: {HINT}"
    buildah = store()
    try:
        buildah.run("--version", timeout=30)
        with buildah.container("scratch"):
            pass
    except (ImageError, OSError, subprocess.TimeoutExpired) as exc:
        return f"buildah cannot run here: {exc}"
    return None


def base_key() -> str:
    """What the two base images contain, as a short hash: their tags and the tarballs' folder."""
    recipe = {
        "suite": SUITE,
        "mirror": MIRROR,
        "runtime": RUNTIME_PACKAGES,
        "build": BUILD_PACKAGES,
        "dpkg": DPKG_OPTIONS,
        "recipe": RECIPE,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Bases:
    runtime: str
    build: str
    #: What making them took this time: "store" (already imported), "tarballs" or "mmdebstrap".
    source: str
    seconds: float


def debian_bases(log: Path) -> Bases:
    """The runtime and build base images in buildah's storage, made only if missing."""
    started = time.monotonic()
    key = base_key()
    buildah = store()
    runtime, build = f"localhost/k8sev-base-runtime:{key}", f"localhost/k8sev-base-build:{key}"
    folder = cache() / f"debian-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    # One maker at a time: a second test run waits and then finds everything made.
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if buildah.has_image(runtime) and buildah.has_image(build):
            return Bases(runtime, build, "store", time.monotonic() - started)
        source = "tarballs"
        if not ((folder / "runtime.tar").exists() and (folder / "build.tar").exists()):
            _mmdebstrap(folder, log)
            source = "mmdebstrap"
        for name, tarball in ((runtime, folder / "runtime.tar"), (build, folder / "build.tar")):
            _import(buildah, tarball, name, log)
    return Bases(runtime, build, source, time.monotonic() - started)


def _mmdebstrap(folder: Path, log: Path) -> None:
    """Both root filesystems in one bootstrap: the runtime tree is archived by a hook, then pip and
    venv are installed into the same tree, which becomes the build tarball."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        runtime, build = Path(tmp) / "runtime.tar", Path(tmp) / "build.tar"
        # /proc, /sys and /dev are mounted while hooks run: archived as empty folders only.
        archive_runtime = (
            f'tar --numeric-owner --xattrs -C "$1" --exclude=./proc --exclude=./sys --exclude=./dev'
            f" --exclude='./var/lib/apt/lists/*' --exclude='./var/cache/apt/*' -cf {runtime} ."
            f' && tar --numeric-owner -C "$1" --no-recursion -rf {runtime} ./proc ./sys ./dev'
        )
        add_build_tools = (
            'chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends '
            + " ".join(BUILD_PACKAGES)
        )
        argv = [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            f"--include={','.join(RUNTIME_PACKAGES)}",
            *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
            f"--customize-hook={archive_runtime}",
            f"--customize-hook={add_build_tools}",
            SUITE,
            str(build),
            MIRROR,
        ]
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=1200, check=False)
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise ImageError(f"mmdebstrap failed ({proc.returncode}); log {log}:\n{tail}")
        # Renamed last: a tarball in the cache is always whole.
        os.replace(runtime, folder / "runtime.tar")
        os.replace(build, folder / "build.tar")


def _import(buildah: Buildah, tarball: Path, name: str, log: Path) -> None:
    with buildah.container("scratch") as container:
        buildah.run("add", container, str(tarball), "/", log=log)
        buildah.run("config", "--env", f"PATH={PATH}", "--cmd", "/bin/sh", container, log=log)
        buildah.run("commit", "--quiet", container, name, log=log)


def build(context: Path, tag: str, bases: Bases, log: Path) -> tuple[float, int]:
    """``buildah bud`` of ``context``'s Dockerfile on the Debian bases: the seconds it took and how
    many steps it took from the layer cache."""
    started = time.monotonic()
    args = [
        "bud",
        "--isolation",
        "chroot",
        "--layers",
        "--pull=never",
        "--build-arg",
        f"PYTHON_IMAGE={bases.runtime}",
        "--build-arg",
        f"BUILD_IMAGE={bases.build}",
        "--tag",
        tag,
    ]
    if HOST_CA_BUNDLE.exists():
        args += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    output = store().run(*args, str(context), timeout=1800, log=log)
    return time.monotonic() - started, output.count("Using cache")
