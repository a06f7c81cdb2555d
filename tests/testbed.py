"""Systemd containers to provision: the Docker engine, the test image, the containers.

Used by the integration tests (imported) and by `make demo` (as a command):

    python tests/testbed.py engine            # start a Docker engine if none runs
    python tests/testbed.py prepare           # install docker.io and debootstrap, build the base file systems
    python tests/testbed.py image [RELEASE]   # build the test images unless cached (bookworm, trixie)
    python tests/testbed.py start NAME        # run (or reuse) a Debian 12 systemd container NAME
    python tests/testbed.py clean             # remove every test container, network and image

Standard library only: it runs before the virtualenv has anything in it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import select
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_DIR = ROOT / "tests" / "image"
CACHE_DIR = ROOT / ".cache"

# The Debian releases the deploy supports and the suite proves, by codename: the Redis major
# each ships is in smart_redis.constants.DISTRO_REDIS_MAJOR. The first is the default image.
RELEASES = ("bookworm", "trixie")
DEFAULT_RELEASE = RELEASES[0]


# Two images of each release. The bare one is a minimal Debian as debootstrap leaves it: the tests
# of a fresh host (test_core, test_package), make demo and make bench provision it. The cloud one
# adds what Debian's cloud images already have, python3 and sudo, and keeps a package index of
# the build's hour: the other modules need a provisioned host, not the first install of python3,
# and a cold provision there costs the container 4 s of CPU instead of 12 (measured: python3's
# install 4.6 s, apt-get update 2.7 s, sudo 1.3 s). make test is bound by the two cores.
def image_name(release: str = DEFAULT_RELEASE, cloud: bool = False) -> str:
    return f"smart-redis-testhost:{release}{'-cloud' if cloud else ''}"


def base_name(release: str = DEFAULT_RELEASE) -> str:
    return f"smart-redis-base:{release}"


IMAGE = image_name()
BASE_FALLBACK = base_name()
# Every test container, network and image carries this label so that cleanup finds them all.
TEST_LABEL = "smart-redis.test"
DEMO_LABEL = "smart-redis.demo"
DOCKERD_LOG = Path("/var/log/smart-redis-dockerd.log")

# Measured on this machine kind: --privileged fails (no CAP_SYS_RESOURCE), these work.
SYSTEMD_RUN_FLAGS = [
    "--cap-add",
    "SYS_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
]


class TestbedError(RuntimeError):
    pass


@contextlib.contextmanager
def exclusive(name: str):
    """One process at a time (pytest's workers run side by side): an image build, a network's subnet."""
    CACHE_DIR.mkdir(exist_ok=True)
    with open(CACHE_DIR / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def log(message: str) -> None:
    print(f"[testbed] {message}", file=sys.stderr, flush=True)


def run(*args: str, check: bool = True, timeout: float | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, text=True, capture_output=True, timeout=timeout, **kwargs)


def docker(*args: str, check: bool = True, timeout: float | None = 120) -> subprocess.CompletedProcess:
    try:
        return run("docker", *args, check=check, timeout=timeout)
    except subprocess.CalledProcessError as exc:
        raise TestbedError(f"docker {' '.join(args)}: {exc.stderr.strip() or exc.stdout.strip()}") from exc


# The engine's API, for exec_in: the socket the docker CLI uses (DOCKER_HOST=unix://... or the
# default); None for an engine the CLI reaches otherwise (tcp, a context), where exec_in uses it.
def _docker_socket() -> str | None:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://") or os.environ.get("DOCKER_CONTEXT"):
        return None
    return host.removeprefix("unix://")


def _api(method: str, path: str, body: dict | None = None, timeout: float = 30) -> tuple[int, bytes, socket.socket]:
    """One request to the engine's API; returns (status, bytes read past the headers, the socket)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(timeout)
        conn.connect(_docker_socket() or "")
        data = json.dumps(body).encode() if body is not None else b""
        # An exec's start takes over the connection for its streams; HTTP/1.0 elsewhere: a plain
        # body up to the close, never chunked.
        version, upgrade = (
            ("1.1", "Connection: Upgrade\r\nUpgrade: tcp\r\n") if path.endswith("/start") else ("1.0", "")
        )
        conn.sendall(
            f"{method} {path} HTTP/{version}\r\nHost: docker\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{upgrade}\r\n".encode()
            + data
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                raise TestbedError(f"{method} {path}: the engine closed the connection without an answer")
            head += chunk
    except BaseException:
        conn.close()
        raise
    headers, _, rest = head.partition(b"\r\n\r\n")
    return int(headers.split(b" ", 2)[1]), rest, conn


def _api_json(method: str, path: str, body: dict | None = None) -> dict:
    status, rest, conn = _api(method, path, body)
    with conn:
        while chunk := conn.recv(65536):
            rest += chunk
    if status >= 400:
        raise TestbedError(f"{method} {path}: {status} {rest[:300]!r}")
    return json.loads(rest)


def _send_input(conn: socket.socket, data: bytes) -> None:
    """The standard input, then its end; stops early where the command no longer reads it."""
    with contextlib.suppress(OSError):  # it exited, or stopped reading: its output and exit code tell
        conn.sendall(data)
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)


def exec_in(
    container: str, argv: list[str], input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """`docker exec [-i] CONTAINER ARGV...` without the docker CLI: the tests make thousands of
    these. Run by the calling thread's shell session in the container (one exec of the engine's
    API that stays open, see _Session): the same namespaces, cgroups and profile as the CLI's
    exec, for a fifth of the CPU. Returns what subprocess.run(..., text=True, timeout=timeout)
    would, and raises its TimeoutExpired. Where the CLI reaches its engine otherwise than by a
    unix socket, it is the CLI."""
    data = None if input is None else input.encode()
    code, out, err = exec_bytes(container, argv, data, timeout)
    return subprocess.CompletedProcess(["docker", "exec", container, *argv], code, _text(out), _text(err))


def exec_bytes(
    container: str, argv: list[str], input: bytes | None = None, timeout: float = 120, user: str | None = None
) -> tuple[int, bytes, bytes]:
    """exec_in's exec, as bytes: (exit code, stdout, stderr); `user` is docker exec's -u (an exec
    of its own: the session runs as root)."""
    if _docker_socket() is not None and user is None:
        session = _session(container)
        if session is not None:
            return session.run(argv, input, timeout)
    return _exec_once(container, argv, input, timeout, user)


def _exec_once(
    container: str, argv: list[str], input: bytes | None, timeout: float, user: str | None
) -> tuple[int, bytes, bytes]:
    """One exec of its own: the engine runs argv in the container."""
    if _docker_socket() is None:
        flags = (["-i"] if input is not None else []) + (["-u", user] if user else [])
        done = subprocess.run(
            ["docker", "exec", *flags, container, *argv], input=input, capture_output=True, timeout=timeout
        )
        return done.returncode, done.stdout, done.stderr
    args = ["docker", "exec", container, *argv]
    deadline = time.monotonic() + timeout
    request = {"AttachStdin": input is not None, "AttachStdout": True, "AttachStderr": True, "Tty": False, "Cmd": argv}
    if user:
        request["User"] = user
    try:
        created = _api_json("POST", f"/containers/{container}/exec", request)
    except TestbedError as refused:  # no such container, or not running: exit code 1, as the CLI's
        return 1, b"", f"Error response from daemon: {refused}\n".encode()
    status, rest, conn = _api("POST", f"/exec/{created['Id']}/start", {"Detach": False, "Tty": False}, timeout)
    buffer = bytearray(rest)
    with conn:
        if status not in (101, 200):
            return 1, b"", f"Error response from daemon: {rest[:300]!r}\n".encode()
        # The input from a thread while the output is read: a command that writes as it reads
        # would otherwise fill the pipes and wait for us while we wait for it.
        writer = threading.Thread(target=_send_input, args=(conn, input or b""), daemon=True)
        writer.start()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(args, timeout)
            conn.settimeout(left)
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                raise subprocess.TimeoutExpired(args, timeout) from None
            if not chunk:
                break
            buffer += chunk
        writer.join(5)
    streams = {1: bytearray(), 2: bytearray()}
    while len(buffer) >= 8:  # frames: stream (1 byte), 3 zero bytes, size (4 bytes), payload
        size = int.from_bytes(buffer[4:8], "big")
        streams.setdefault(buffer[0], bytearray()).extend(buffer[8 : 8 + size])
        del buffer[: 8 + size]
    code = None
    with contextlib.suppress(TestbedError):  # the container went away meanwhile: no exit code
        while (state := _api_json("GET", f"/exec/{created['Id']}/json"))["Running"] and time.monotonic() < deadline:
            time.sleep(0.01)
        code = state["ExitCode"]
    return 1 if code is None else code, bytes(streams[1]), bytes(streams[2])


# A shell that stays in the container and runs what it is sent, one command after the other, each
# as the exec would (`sh FILE` with the argv quoted; stdin from the input or empty). An exec costs
# the engine, containerd and runc about 40 ms of CPU; make test asks the containers about 2800
# questions of its own. Each command's files are new: a process that it leaves running keeps
# reading and writing files nobody else uses. A request ends with a line `end`: one cut short (the
# test process killed or timed out while sending) ends the shell instead of running a part of it.
_SESSION_SCRIPT = """
d=$(mktemp -d /dev/shm/.smart-redis-test.XXXXXX) || exit 1
trap 'rm -rf "$d"' EXIT
echo ready
n=0
while IFS=' ' read -r clen ilen; do
  n=$((n + 1))
  head -c "$clen" > "$d/cmd.$n" && head -c "$ilen" > "$d/in.$n" && IFS= read -r t && test "$t" = end || exit 1
  sh "$d/cmd.$n" < "$d/in.$n" > "$d/out.$n" 2> "$d/err.$n"
  rc=$?
  printf '%s %s %s\\n' "$rc" "$(wc -c < "$d/out.$n")" "$(wc -c < "$d/err.$n")"
  cat "$d/out.$n" "$d/err.$n"
  rm -f "$d/cmd.$n" "$d/in.$n" "$d/out.$n" "$d/err.$n"
done
"""


class _Session:
    """One long exec of _SESSION_SCRIPT in a container: its input takes `LENGTH INPUT_LENGTH`, the
    command and the input; its output gives `CODE OUT_LENGTH ERR_LENGTH`, the output and errors."""

    def __init__(self, container: str):
        self.container = container
        request = {"AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": False}
        created = _api_json("POST", f"/containers/{container}/exec", {**request, "Cmd": ["sh", "-c", _SESSION_SCRIPT]})
        status, rest, self.conn = _api("POST", f"/exec/{created['Id']}/start", {"Detach": False, "Tty": False})
        self.frames, self.out = bytearray(rest), bytearray()
        if status not in (101, 200):
            self.conn.close()
            raise TestbedError(f"exec start: {status} {rest[:300]!r}")
        try:  # the shell has its folder (a full /dev/shm, say, would end it at once)
            ready = self._until(time.monotonic() + 30, b"\n")
        except (subprocess.TimeoutExpired, OSError, EOFError) as failed:
            ready = f"{type(failed).__name__}: {failed}".encode()
        if ready != b"ready":
            self.close()
            raise TestbedError(f"the session's shell did not start: {ready[:300]!r}")

    def ended(self) -> bool:
        """The shell is gone (the container stopped or went): its connection is at its end."""
        if self.conn.fileno() < 0:  # closed here, after a timeout
            return True
        while select.select([self.conn], [], [], 0)[0]:
            try:
                chunk = self.conn.recv(65536)
            except OSError:
                return True
            if not chunk:
                return True
            self.frames += chunk
        return False

    def run(self, argv: list[str], input: bytes | None, timeout: float) -> tuple[int, bytes, bytes]:
        script, data = shlex.join(argv).encode() + b"\n", input or b""
        deadline = time.monotonic() + timeout
        try:
            self.conn.settimeout(max(timeout, 1))
            try:
                self.conn.sendall(f"{len(script)} {len(data)}\n".encode() + script + data + b"end\n")
            except TimeoutError:  # the shell does not read: as a command that does not end
                raise subprocess.TimeoutExpired("session", timeout) from None
            code, out_length, err_length = (int(n) for n in self._until(deadline, b"\n").split())
            return code, self._exactly(out_length, deadline), self._exactly(err_length, deadline)
        except subprocess.TimeoutExpired:
            self.close()  # the command may still run, as an exec's would: the next one gets a new shell
            raise subprocess.TimeoutExpired(["docker", "exec", self.container, *argv], timeout) from None
        except (OSError, ValueError, EOFError) as lost:  # the container stopped during the command
            self.close()
            return 1, b"", f"the container's shell ended during the command: {lost}\n".encode()
        except BaseException:  # interrupted (Ctrl-C) with a reply unread: never read it as the next one's
            self.close()
            raise

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()

    def _until(self, deadline: float, end: bytes) -> bytes:
        self._parse()
        while end not in self.out:
            self._receive(deadline)
        line, _, rest = self.out.partition(end)
        self.out = bytearray(rest)
        return bytes(line)

    def _exactly(self, size: int, deadline: float) -> bytes:
        self._parse()
        while len(self.out) < size:
            self._receive(deadline)
        data = bytes(self.out[:size])
        del self.out[:size]
        return data

    def _receive(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired("session", 0)
        self.conn.settimeout(left)
        try:
            chunk = self.conn.recv(65536)
        except TimeoutError:
            raise subprocess.TimeoutExpired("session", 0) from None
        if not chunk:
            raise EOFError("end of the connection")
        self.frames += chunk
        self._parse()

    def _parse(self) -> None:
        """The frames received so far -> the shell's output (stream 1)."""
        while len(self.frames) >= 8:  # frames: stream (1 byte), 3 zero bytes, size (4 bytes), payload
            size = int.from_bytes(self.frames[4:8], "big")
            if len(self.frames) < 8 + size:
                break
            if self.frames[0] == 1:  # the shell's own errors (stream 2) are not a command's
                self.out += self.frames[8 : 8 + size]
            del self.frames[: 8 + size]


_sessions: dict[tuple[str, int], _Session] = {}


def _session(container: str) -> _Session | None:
    """This thread's shell in the container, started if need be; None where none starts (the
    container is not running: the exec of its own says why)."""
    key = (container, threading.get_ident())
    session = _sessions.get(key)
    if session is not None and not session.ended():
        return session
    if session is not None:
        session.close()
        del _sessions[key]
    try:
        session = _Session(container)
    except (TestbedError, OSError):
        return None
    _sessions[key] = session
    return session


def _text(data: bytes) -> str:
    """Decoded as subprocess's text mode does it: universal newlines."""
    return data.decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def engine_running() -> bool:
    if not shutil.which("docker"):
        return False
    return run("docker", "info", check=False, timeout=30).returncode == 0


def _apt_install(*packages: tuple[str, str]) -> None:
    """Install the Debian packages (package, binary) whose binary is missing. One process at a
    time: make test's tests may start while its prepare still installs."""
    with exclusive("apt"):
        missing = [package for package, binary in packages if not shutil.which(binary)]
        if not missing:
            return
        log(f"installing Debian packages: {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        wait = ["-o", "DPkg::Lock::Timeout=300"]  # another apt on the machine (unattended-upgrades)
        subprocess.run(["apt-get", *wait, "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", *wait, "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL
        )


def _can_apt_install() -> bool:
    return os.geteuid() == 0 and Path("/etc/debian_version").exists() and bool(shutil.which("apt-get"))


def ensure_engine() -> bool:
    """Make sure a Docker engine answers. Returns True when this call started it."""
    if engine_running():
        return False
    if _can_apt_install():
        _apt_install(("docker.io", "dockerd"))  # or wait for make test's prepare installing it
        if engine_running():  # the package's own service started it meanwhile
            return False
    if not shutil.which("dockerd"):
        raise TestbedError(
            "no Docker engine runs and none can be installed here: "
            "install Docker (Debian: apt-get install docker.io) and start it, then run again"
        )
    log(f"starting dockerd (log: {DOCKERD_LOG})")
    with open(DOCKERD_LOG, "ab") as out:
        subprocess.Popen(["dockerd"], stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if engine_running():
            return True
        time.sleep(0.5)
    raise TestbedError(f"dockerd did not answer within 60 s; see {DOCKERD_LOG}")


def stop_engine() -> None:
    """Stop a dockerd that ensure_engine started."""
    subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and run("pgrep", "-x", "dockerd", check=False).returncode == 0:
        time.sleep(0.5)


CLOUD_DOCKERFILE = "cloud.Dockerfile"


def _image_fingerprint(cloud: bool = False) -> str:
    digest = hashlib.sha256()
    for name in ("Dockerfile", "packages.txt", *([CLOUD_DOCKERFILE] if cloud else [])):
        digest.update((IMAGE_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def _image_label(image: str, label: str) -> str | None:
    result = docker("image", "inspect", "-f", f'{{{{index .Config.Labels "{label}"}}}}', image, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _check_release(release: str) -> None:
    if release not in RELEASES:
        raise TestbedError(f"unknown release {release!r}: the test images are {', '.join(RELEASES)}")


def _registry_base(release: str) -> str | None:
    """debian:RELEASE when it is present or can be pulled, else None."""
    official = f"debian:{release}"
    if docker("image", "inspect", official, check=False).returncode == 0:
        return official
    try:
        if docker("pull", "-q", official, check=False, timeout=60).returncode == 0:
            return official
    except subprocess.TimeoutExpired:
        pass
    return None


def _rootfs_tarball(release: str) -> Path:
    """The debootstrap root file system of a release, built once and kept in .cache/."""
    tarball = CACHE_DIR / f"{release}-rootfs-{_image_fingerprint()}.tar"
    with exclusive(f"rootfs-{release}"):
        if not tarball.exists():
            _build_rootfs(release, tarball)
    return tarball


def _build_rootfs(release: str, tarball: Path) -> None:
    packages = (IMAGE_DIR / "packages.txt").read_text().split()
    if not shutil.which("debootstrap"):
        if not _can_apt_install():
            raise TestbedError("no registry reachable and no debootstrap: apt-get install debootstrap")
        _apt_install(("debootstrap", "debootstrap"))
    CACHE_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smart-redis-rootfs-") as rootfs:
        log(f"building a Debian {release} base with debootstrap (about a minute)")
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", release, rootfs],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # A name of its own: two runs sharing this checkout may build the same release at once.
        fd, name = tempfile.mkstemp(dir=CACHE_DIR, prefix=f"{tarball.name}.", suffix=".partial")
        os.close(fd)
        partial = Path(name)
        try:
            subprocess.run(["tar", "-C", rootfs, "-cf", str(partial), "."], check=True)
            partial.chmod(0o644)  # mkstemp's 0600 would hide the cache from other users of the checkout
            partial.rename(tarball)
        finally:
            partial.unlink(missing_ok=True)


def _debootstrap_base(release: str) -> str:
    """Build the same Debian base offline with debootstrap and import it."""
    tarball = _rootfs_tarball(release)
    base = base_name(release)
    log(f"importing {tarball.name} as {base}")
    docker("import", "--change", f"LABEL {TEST_LABEL}=1", str(tarball), base, timeout=300)
    return base


def prepare() -> None:
    """What a first run needs before any engine runs, done ahead: the Debian packages (docker.io,
    debootstrap) and the root file systems of every release, built side by side. make test runs
    this in the background while it makes and checks the venv (about two minutes of a fresh
    clone's run). Where a registry serves debian:RELEASE, the images are built from that instead
    and the tarballs stay unused."""
    if _can_apt_install():
        _apt_install(("docker.io", "dockerd"), ("debootstrap", "debootstrap"))
    with concurrent.futures.ThreadPoolExecutor(len(RELEASES)) as pool:
        for tarball in pool.map(_rootfs_tarball, RELEASES):
            log(f"ready: {tarball.name}")


def ensure_image(release: str = DEFAULT_RELEASE, cloud: bool = False) -> str:
    """Build a test image of a Debian release (the cloud one on the bare one) unless one of the
    same Dockerfiles is already there."""
    if cloud:
        bare = ensure_image(release)
        with exclusive(f"image-{release}-cloud"):
            return _ensure_image(release, bare, cloud=True)
    with exclusive(f"image-{release}"):
        return _ensure_image(release)


def _ensure_image(release: str, base: str | None = None, cloud: bool = False) -> str:
    _check_release(release)
    image = image_name(release, cloud)
    fingerprint = _image_fingerprint(cloud)
    if cloud and base:  # and the bare image it is built on: a rebuilt bare one means a rebuild
        fingerprint += (
            "-" + docker("image", "inspect", "-f", "{{.Id}}", base).stdout.strip().removeprefix("sha256:")[:12]
        )
    if _image_label(image, "smart-redis.fingerprint") == fingerprint:
        return image
    base = base or _registry_base(release) or _debootstrap_base(release)
    log(f"building {image} from {base}")
    docker(
        "build",
        "-q",
        *(["-f", str(IMAGE_DIR / CLOUD_DOCKERFILE)] if cloud else []),
        "--build-arg",
        f"BASE={base}",
        "--label",
        f"{TEST_LABEL}=1",
        "--label",
        f"smart-redis.fingerprint={fingerprint}",
        "-t",
        image,
        str(IMAGE_DIR),
        timeout=900,
    )
    return image


def wait_for_systemd(name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        result = exec_in(name, ["systemctl", "is-system-running"])
        state = result.stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise TestbedError(f"systemd in {name} did not finish booting within {timeout:.0f} s (state: {state!r})")


def start_container(
    name: str,
    *,
    label: str = TEST_LABEL,
    network: str | None = None,
    publish: list[str] | None = None,
    volumes: list[str] | None = None,
    ip: str | None = None,
    release: str = DEFAULT_RELEASE,
    cloud: bool = False,
) -> str:
    """Run a systemd container from a release's test image (or reuse a running one) and wait for boot.

    The image must exist already (ensure_image(release, cloud)).
    """
    inspect = docker("inspect", "-f", "{{.State.Running}}", name, check=False)
    if inspect.returncode == 0:
        if inspect.stdout.strip() != "true":
            docker("start", name)
    else:
        args = ["run", "-d", "--name", name, "--hostname", name, "--label", f"{label}=1", *SYSTEMD_RUN_FLAGS]
        if network:
            args += ["--network", network]
        if ip:
            args += ["--ip", ip]
        for port in publish or []:
            args += ["-p", port]
        for volume in volumes or []:
            args += ["-v", volume]
        docker(*args, image_name(release, cloud))
    wait_for_systemd(name)
    return name


def create_network(name: str, fixed_addresses: bool = False) -> str:
    """A test network; with fixed_addresses its subnet is declared, so containers may get --ip."""
    with exclusive("network"):
        return _create_network(name, fixed_addresses)


def _create_network(name: str, fixed_addresses: bool) -> str:
    if docker("network", "inspect", name, check=False).returncode != 0:
        docker("network", "create", "--label", f"{TEST_LABEL}=1", name)
        if fixed_addresses:
            # Docker only honours --ip on a declared subnet: declare the free one it just picked.
            subnet = docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", name).stdout.strip()
            docker("network", "rm", name)
            docker("network", "create", "--label", f"{TEST_LABEL}=1", "--subnet", subnet, name)
    return name


def network_addresses(name: str, count: int) -> list[str]:
    """`count` fixed addresses in a network's subnet, so that a restarted container keeps its own."""
    import ipaddress

    subnet = docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", name).stdout.strip()
    hosts = ipaddress.ip_network(subnet).hosts()
    return [str(next(hosts)) for _ in range(20)][10 : 10 + count]


def remove_container(name: str) -> None:
    docker("rm", "-f", "-v", name, check=False)


def clean(images: bool = False) -> None:
    """Remove every test container and network; with images=True the test images and bases of every release too."""
    ids = docker("ps", "-aq", "--filter", f"label={TEST_LABEL}", check=False).stdout.split()
    if ids:
        docker("rm", "-f", "-v", *ids, check=False)
    nets = docker("network", "ls", "-q", "--filter", f"label={TEST_LABEL}", check=False).stdout.split()
    if nets:
        docker("network", "rm", *nets, check=False)
    if images:
        for release in RELEASES:
            for image in (image_name(release, cloud=True), image_name(release), base_name(release)):
                docker("rmi", image, check=False)
        # Earlier builds that a rebuild untagged (a changed Dockerfile, a base imported again).
        docker("image", "prune", "-f", "--filter", f"label={TEST_LABEL}", check=False)


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["engine"]:
            ensure_engine()
        elif argv[:1] == ["prepare"]:
            prepare()
        elif argv[:1] == ["image"] and len(argv) <= 2:
            release = argv[1] if len(argv) == 2 else DEFAULT_RELEASE
            _check_release(release)  # before starting an engine for nothing
            ensure_engine()
            print(ensure_image(release))
            print(ensure_image(release, cloud=True))
        elif argv[:1] == ["start"] and len(argv) == 2:
            ensure_engine()
            ensure_image()
            start_container(argv[1], label=DEMO_LABEL)
        elif argv[:1] == ["clean"]:
            if engine_running():
                clean(images="--images" in argv)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (TestbedError, subprocess.CalledProcessError) as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
