"""Emulated device userlands for fleet tests: Debian root filesystems built with debootstrap,
entered with chroot, foreign architectures run by qemu-user-static through binfmt_misc.

A `Recipe` names a userland (architecture, suite, packages). `build(recipe)` debootstraps it once
into CACHE_DIR/<name>-<hash of the recipe> and reuses it on later runs (and on other checkouts of
this machine); a build that dies half-way leaves only a `.partial` folder, removed by the next
build, and older builds of the same name are deleted when a new one lands. `Chroot(recipe, tmp, log)`
mounts what programs in it need (a fresh /proc; a private /dev with the basic nodes, never the
host's /sys: onnxruntime's cpuinfo segfaults reading it under qemu; `tmp` as /tmp) and copies in
the host's DNS, CA bundle and pip config, so pip inside reaches the registries the host's own
configuration names; `close()` kills what it started and unmounts, also when a test fails, and
a finalizer calls it if the test never does. Mounts left under the cache by a run that crashed
are unmounted before the next run enters. The chroot shares the host's network namespace:
127.0.0.1 inside is the host's loopback.

`agent_venv(...)` keeps a venv at /opt/edgelab inside the rootfs whose dependencies match a key
(the agent's declared requirements, extras and pinning rule): it is rebuilt when they change, and
on every run the agent's own wheel, built from the working tree, is reinstalled.

Needs root, debootstrap, and for foreign architectures binfmt_misc with qemu-user-static's
interpreters registered (Debian's qemu-user-static + binfmt-support register them with the F
flag, so nothing is copied into the rootfs).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

CACHE_DIR = Path(os.environ.get("EDGELAB_DEVICE_CACHE", "/var/cache/edgelab-devices"))
RECIPE_VERSION = 1  # bump when build() itself changes what ends up in a rootfs
APT_PACKAGES = ("debootstrap", "qemu-user-static", "binfmt-support")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
DEBOOTSTRAP_TIMEOUT_S = 40 * 60
VENV = "/opt/edgelab"
_PIP_CONFIG = Path("/etc/pip.conf")
_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_DEV_NODES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
_PASSED_ENV = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
_HOST_LOCAL_PIP = {"PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_CONFIG_FILE"}  # paths that exist only on the host
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Recipe:
    """A Debian userland: what debootstrap is asked for."""

    name: str
    arch: str  # Debian architecture: arm64, armhf, amd64
    suite: str  # bookworm, bullseye
    packages: tuple[str, ...] = ("python3", "python3-venv", "ca-certificates")
    binfmt: str | None = None  # the binfmt_misc entry that runs its binaries (None: the host's own)

    @property
    def key(self) -> str:
        spec = json.dumps({**asdict(self), "version": RECIPE_VERSION}, sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()[:12]

    @property
    def path(self) -> Path:
        return CACHE_DIR / f"{self.name}-{self.key}"


def unavailable_reason(recipes: Sequence[Recipe]) -> str | None:
    """Why these userlands cannot be built or entered here (for pytest.skip), or None."""
    if os.geteuid() != 0:
        return "chroot, mounts and debootstrap need root (CI runs these tests as root)"
    missing = [tool for tool in ("debootstrap", "chroot", "mount", "umount") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install {' '.join(APT_PACKAGES)})"
    for recipe in recipes:
        if recipe.binfmt is None:
            continue
        reason = _binfmt_reason(recipe.binfmt)
        if reason:
            return f"{recipe.name}: {reason}"
    return None


def _binfmt_reason(entry: str) -> str | None:
    if not (BINFMT_DIR / "status").exists():
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)])
    if not (BINFMT_DIR / "status").exists():
        return f"binfmt_misc is not mounted at {BINFMT_DIR} and could not be mounted"
    handler = BINFMT_DIR / entry
    if not handler.exists() and shutil.which("update-binfmts"):
        with contextlib.suppress(subprocess.CalledProcessError):
            _run(["update-binfmts", "--enable", entry])
    if not handler.exists():
        return f"no binfmt_misc handler {entry} (apt-get install qemu-user-static binfmt-support)"
    lines = handler.read_text().splitlines()
    if not lines or lines[0] != "enabled":
        return f"binfmt_misc handler {entry} is disabled"
    flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
    if "F" not in flags:
        return f"binfmt_misc handler {entry} lacks the F flag (a chroot would need the interpreter copied in)"
    return None


def debian_mirror() -> str:
    """The Debian archive the host's apt sources name (deb822 or one-line format)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        if not source.is_file():
            continue
        text = source.read_text()
        if source.suffix == ".sources":
            for stanza in text.split("\n\n"):
                fields = dict(
                    line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#")
                )
                suites = fields.get("Suites", "").split()
                uris = fields.get("URIs", "").split()
                if uris and suites and not any(s.endswith("-security") for s in suites):
                    return uris[0]
        else:
            for line in text.splitlines():
                words = line.split()
                if len(words) >= 3 and words[0] == "deb" and not words[2].endswith("-security"):
                    return next(w for w in words[1:] if "://" in w)
    raise RuntimeError("no Debian mirror found in the host's apt sources")


@dataclass
class BuildReport:
    recipe: Recipe
    path: Path
    seconds: float
    cached: bool

    def describe(self) -> str:
        if self.cached:
            return f"{self.recipe.name}: rootfs cache hit {self.path}"
        return f"{self.recipe.name}: rootfs built in {self.seconds:.0f} s ({self.recipe.suite}/{self.recipe.arch})"


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One process at a time builds, enters or installs into the userland `name` (other runs wait)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(recipe: Recipe, log: IO[str]) -> BuildReport:
    """The recipe's rootfs, debootstrapped now or found in the cache (call it holding the lock)."""
    started = time.monotonic()
    if (recipe.path / ".complete").is_file():
        return BuildReport(recipe, recipe.path, 0.0, cached=True)
    for old in CACHE_DIR.glob(f"{recipe.name}-*"):  # other recipes' builds and half-done ones
        if old.is_dir():
            unmount_under(old)
            shutil.rmtree(old)
    partial = CACHE_DIR / f"{recipe.name}-{recipe.key}.partial"
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--arch={recipe.arch}",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(partial),
        debian_mirror(),
    ]
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    try:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=DEBOOTSTRAP_TIMEOUT_S)
    finally:
        unmount_under(partial)  # debootstrap mounts /proc and /sys in the target while it works
    shutil.rmtree(partial / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    (partial / ".complete").write_text(json.dumps(asdict(recipe), indent=1) + "\n")
    partial.rename(recipe.path)
    return BuildReport(recipe, recipe.path, time.monotonic() - started, cached=False)


def unmount_under(root: Path) -> None:
    """Unmount everything mounted at or below `root`, deepest first (a crashed run's leftovers)."""
    prefix = str(root.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)


class Chroot:
    """The recipe's rootfs (built first when the cache lacks it) entered with chroot; use as a
    context manager, or call `close()`. Holds the userland's lock while open: concurrent runs on
    this machine take turns."""

    def __init__(self, recipe: Recipe, tmp: Path, log: IO[str]) -> None:
        self.recipe = recipe
        self.root = recipe.path
        self.tmp = tmp
        self._lock = contextlib.ExitStack()
        self._mounts: list[Path] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(self, _teardown, self._processes, self._mounts, self._lock)
        try:
            self._lock.enter_context(_locked(recipe.name))
            self.build = build(recipe, log)
            unmount_under(self.root)
            self._mount(tmp)
            self._copy_host_config()
        except BaseException:
            self.close()
            raise

    def _mount(self, tmp: Path) -> None:
        proc, dev, inner_tmp = self.root / "proc", self.root / "dev", self.root / "tmp"
        _run(["mount", "-t", "proc", "proc", str(proc)])
        self._mounts.append(proc)
        _run(["mount", "-t", "tmpfs", "-o", "mode=0755,nosuid", "edgelab-dev", str(dev)])
        self._mounts.append(dev)
        for node, (major, minor) in _DEV_NODES.items():
            os.mknod(dev / node, 0o666 | 0o020000, os.makedev(major, minor))
            os.chmod(dev / node, 0o666)  # mknod's mode passes through the umask
        for name in ("shm", "pts"):
            (dev / name).mkdir()
        os.chmod(dev / "shm", 0o1777)  # multiprocessing's semaphores
        for name, target in {"fd": "/proc/self/fd", "stdin": "fd/0", "stdout": "fd/1", "stderr": "fd/2"}.items():
            os.symlink(target, dev / name)
        tmp.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o1777)
        _run(["mount", "--bind", str(tmp), str(inner_tmp)])
        self._mounts.append(inner_tmp)

    def _copy_host_config(self) -> None:
        etc = self.root / "etc"
        resolv = etc / "resolv.conf"
        resolv.unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", resolv)
        if _CA_BUNDLE.is_file():
            (etc / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
            (etc / "ssl" / "certs" / _CA_BUNDLE.name).unlink(missing_ok=True)
            shutil.copyfile(_CA_BUNDLE, etc / "ssl" / "certs" / _CA_BUNDLE.name)
        if _PIP_CONFIG.is_file():
            shutil.copyfile(_PIP_CONFIG, etc / "pip.conf")

    def inside(self, path: Path) -> str:
        """The path, under the host folder mounted as /tmp, as programs inside see it."""
        if not path.is_relative_to(self.tmp):
            raise ValueError(f"{path} is not under {self.tmp}, the chroot's /tmp")
        return f"/tmp/{path.relative_to(self.tmp)}"

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment for programs inside: the host's pip settings and `extra`, nothing else."""
        passed = {k: v for k, v in os.environ.items() if k.startswith("PIP_") and k not in _HOST_LOCAL_PIP}
        return {"PATH": _PATH, "HOME": "/root", "LANG": "C.UTF-8", **passed, **(extra or {})}

    def run(
        self, argv: Sequence[str], log: IO[str], timeout_s: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside, its output appended to `log` and returned; a non-zero exit raises
        RuntimeError with the end of the output."""
        log.write(f"$ chroot {self.root} {' '.join(argv)}\n")
        log.flush()
        done = subprocess.run(
            ["chroot", str(self.root), *argv],
            capture_output=True,
            text=True,
            env=self.env(env),
            timeout=timeout_s,
            start_new_session=True,
        )
        log.write(done.stdout + done.stderr)
        log.flush()
        if done.returncode != 0:
            output = (done.stdout + done.stderr)[-4000:]
            raise RuntimeError(f"`{' '.join(argv)}` in {self.recipe.name} exited with {done.returncode}:\n{output}")
        return done

    def popen(
        self, argv: Sequence[str], log: IO[bytes], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `argv` inside, in its own session: `close()` kills it with its children."""
        process = subprocess.Popen(
            ["chroot", str(self.root), *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(env),
            start_new_session=True,
        )
        self._processes.append(process)
        return process

    def __enter__(self) -> Chroot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()


def _teardown(processes: list[subprocess.Popen[bytes]], mounts: list[Path], lock: contextlib.ExitStack) -> None:
    try:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        for point in reversed(mounts):
            if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True)
        mounts.clear()
    finally:
        lock.close()


@dataclass
class InstallReport:
    seconds: float
    fresh_venv: bool  # False: the cached venv's dependencies matched, only the agent's wheel was reinstalled
    requirements: list[str]  # what was pinned next to the wheel when the venv was built
    commands: list[str] = field(default_factory=list)

    def describe(self, name: str) -> str:
        what = "venv + dependencies + agent" if self.fresh_venv else "the agent's wheel into the cached venv"
        pins = f" (pinned: {' '.join(self.requirements)})" if self.requirements else ""
        return f"{name}: installed {what} in {self.seconds:.0f} s{pins}"


def agent_venv(
    chroot: Chroot,
    wheel: Path,
    extras: Sequence[str],
    key_material: object,
    log: IO[str],
    *,
    requirements: Callable[[Chroot], list[str]] = lambda _: [],
    system_site_packages: bool = False,
    upgrade_pip: bool = False,
    timeout_s: float = 30 * 60,
) -> InstallReport:
    """Install the agent's wheel (a file under the chroot's `tmp`) into VENV inside the rootfs,
    with pip and wheels only (`--only-binary=:all:`: a device has no compiler).

    The venv and its dependencies are rebuilt only when `key_material` (what decides them: the
    agent's declared requirements, the extras, how pins are chosen) changed since the last run;
    `requirements(chroot)`, run then, inside the new venv, names what to pin next to the wheel.
    Otherwise only the agent's own wheel is replaced and `pip check` proves the kept dependencies
    still satisfy it."""
    started = time.monotonic()
    key = hashlib.sha256(json.dumps(key_material, sort_keys=True, default=str).encode()).hexdigest()[:16]
    stamp = chroot.root / VENV.lstrip("/") / ".edgelab-deps.json"
    inner_wheel = chroot.inside(wheel)
    pip = [f"{VENV}/bin/python", "-m", "pip", "--no-input"]
    target = f"{inner_wheel}[{','.join(extras)}]" if extras else inner_wheel
    kept = json.loads(stamp.read_text()) if stamp.is_file() else {}
    fresh = kept.get("key") != key
    commands: list[str] = []

    def run(argv: list[str]) -> None:
        commands.append(" ".join(argv))
        chroot.run(argv, log, timeout_s, proxy_env())

    if fresh:
        shutil.rmtree(chroot.root / VENV.lstrip("/"), ignore_errors=True)
        run(["python3", "-m", "venv", *(["--system-site-packages"] if system_site_packages else []), VENV])
        if upgrade_pip:
            run([*pip, "install", "--only-binary=:all:", "--upgrade", "pip"])
        pins = requirements(chroot)
        run([*pip, "install", "--only-binary=:all:", target, *pins])
        stamp.write_text(json.dumps({"key": key, "requirements": pins}) + "\n")
    else:
        pins = list(kept.get("requirements", []))
        run([*pip, "uninstall", "-y", "edgelab"])
        run([*pip, "install", "--no-deps", "--only-binary=:all:", inner_wheel])
        run([*pip, "check"])
    return InstallReport(time.monotonic() - started, fresh, pins, commands)


def proxy_env() -> dict[str, str]:
    """The host's proxy settings, for pip inside (agents dial loopback and must not get them)."""
    return {k: v for k, v in os.environ.items() if k in _PASSED_ENV}


def _run(argv: Sequence[str]) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=60).stdout
