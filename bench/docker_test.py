"""`script/docker-test`: the Docker image, the add-on and docker/compose.yaml,
built from the working tree with Podman and checked over Wyoming.

For each of them: every Wyoming service answers `describe` and does its job
once (TTS audio, a transcript of the shipped kitchen.wav, a wake word
detection, an intent), over the ports it publishes. The image: its health
check, its non-root user, the HTTP API behind its token, a clean stop. The
add-on, run as the Supervisor runs it (options.json in /data,
SUPERVISOR_TOKEN, Docker's init) beside a stand-in Supervisor: the options
reach the stack, a token is made and kept in /data, and the discovery
messages (`wyoming` per service, `rtvoice` for the HTTP API) arrive.

The base image is the real python:3.11-slim-bookworm when a registry answers,
else a stand-in: Debian bookworm from debootstrap with python3, pip and venv,
imported under the official name (its root file system is cached). What was
built and started is removed at the end; the base image is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize
from wyoming.wake import Detect

from bench.debian import HOST_CA, debian_mirrors
from bench.load import until
from testing.speech import speak, stream_audio
from wyoming_rtvoice.audio import RATE_16K, WIDTH, convert, read_wav
from wyoming_rtvoice.stack import PORTS
from wyoming_rtvoice.wake.engines import phrase_of

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
ADDON = DOCKER / "addon"
DATA = REPO / "wyoming_rtvoice" / "data"
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "wyoming-rtvoice"
    / "docker"
)

BASE = "docker.io/library/python:3.11-slim-bookworm"
# Bump STAND_IN_RECIPE when stand_in_rootfs() changes: the cached tar and
# image are made again.
STAND_IN_RECIPE = 2
STAND_IN = f"localhost/rtvoice-stand-in:python-3.11-slim-bookworm-r{STAND_IN_RECIPE}"
STAND_IN_LABEL = "org.wyoming-rtvoice.stand-in"
STAND_IN_PACKAGES = "python3,python3-pip,python3-venv,python-is-python3,ca-certificates"
# Like the official Debian images: no package cache left in a layer.
APT_NO_CACHE = 'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
NAME = "rtvoice-docker-test"  # prefix of every container, tag and compose project
LABEL = "org.wyoming-rtvoice.docker-test"
ARCHES = {"amd64": "amd64", "aarch64": "arm64"}  # Home Assistant's name -> OCI's
HTTP_PORT = 10580
ADDON_HOSTNAME = "local-rtvoice"  # what the Supervisor names a local add-on's host
ADDON_OPTIONS = {"wake_models": ["hey_jarvis"], "debug_logging": True}
SUPERVISOR_TOKEN = "docker-test-supervisor-token"
CONFIRMATION = "Turned on the kitchen lights."
COMMAND = "Turn on the kitchen lights."
TIMEOUT_S = 60.0


class CheckFailed(Exception):
    """A check found something wrong."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass
class Report:
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def check(self, name: str, needed: bool = False) -> Iterator[list[str]]:
        """Time one check; the body appends what it found. A failed check is
        reported and the run goes on, unless what follows `needed` it."""
        found: list[str] = []
        started = time.monotonic()
        try:
            yield found
        except Exception as err:  # noqa: BLE001 (one failure must not hide the rest)
            self.failed.append(name)
            took = time.monotonic() - started
            print(f"FAIL {name} ({took:.1f} s): {err}", flush=True)
            if needed:
                raise CheckFailed(f"{name}: {err}") from err
        else:
            self.passed += 1
            took = time.monotonic() - started
            print(f"ok   {name} ({took:.1f} s): {'; '.join(found)}", flush=True)

    def figure(self, line: str) -> None:
        self.figures.append(line)
        print(f"     {line}", flush=True)


# --- Podman -------------------------------------------------------------------


def podman(*args: str, timeout: float = 600.0, check: bool = True) -> str:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode:
        raise CheckFailed(f"podman {' '.join(args[:2])}: {tail(done.stderr)}")
    return done.stdout.strip()


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def runtime_config() -> Path:
    """Podman's configuration for a restricted host: runc, and ulimits no
    higher than this process may set (the defaults ask for more)."""
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    _, nproc = resource.getrlimit(resource.RLIMIT_NPROC)
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text(encoding="utf-8"))
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    path = CACHE / "containers.conf"
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        '[engine]\nruntime = "runc"\n',
        encoding="utf-8",
    )
    return path


def image_ids() -> set[str]:
    return set(podman("images", "--all", "--quiet", "--no-trunc").split())


def image_size_mb(image: str) -> float:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image)) / 1e6


def stand_in_rootfs(arch: str) -> Path:
    """Debian bookworm with Python 3.11, pip and venv (debootstrap), as a tar
    kept in the cache: made once per machine and architecture."""
    tarball = CACHE / f"bookworm-python3.11-{arch}-r{STAND_IN_RECIPE}.tar"
    if tarball.is_file():
        return tarball
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise CheckFailed("the stand-in base needs root and debootstrap")
    archive, security = debian_mirrors()
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "rootfs"
        subprocess.run(
            ["debootstrap", f"--arch={arch}", "--variant=minbase"]
            + [f"--include={STAND_IN_PACKAGES}", "bookworm", str(root), archive],
            check=True,
            capture_output=True,
            timeout=1800,
        )
        (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink()
        (root / "etc/apt/sources.list").write_text(
            f"deb {archive} bookworm main\ndeb {archive} bookworm-updates main\n"
            f"deb {security} bookworm-security main\n",
            encoding="utf-8",
        )
        (root / "etc/apt/apt.conf.d/docker-clean").write_text(
            APT_NO_CACHE, encoding="utf-8"
        )
        for cache in ("var/cache/apt", "var/lib/apt/lists"):  # debootstrap's .debs
            for item in (root / cache).rglob("*"):
                if item.is_file():
                    item.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."],
            check=True,
            timeout=600,
        )
        partial.rename(tarball)
    return tarball


def use_base(arch: str) -> str:
    """Make BASE the `arch` image: pulled where a registry answers, else the
    stand-in. Says which."""
    pulled = subprocess.run(
        ["podman", "pull", "--quiet", "--arch", arch, BASE],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if pulled.returncode == 0:
        return f"the real {BASE} ({arch}), pulled"
    why = tail(pulled.stderr, 1)
    local = podman(
        "image",
        "inspect",
        "--format",
        f'{{{{.Architecture}}}} {{{{index .Labels "{STAND_IN_LABEL}"}}}}',
        BASE,
        check=False,
    )
    if local.split() == [arch]:  # pulled before, not a stand-in
        return f"the real {BASE} ({arch}), pulled before (the registry: {why})"
    stand_in = f"{STAND_IN}-{arch}"
    if not podman("images", "--quiet", stand_in):
        started = time.monotonic()
        tarball = stand_in_rootfs(arch)
        podman(
            "import",
            "--arch",
            arch,
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            'CMD ["python3"]',
            "--change",
            f"LABEL {STAND_IN_LABEL}=debootstrap",
            str(tarball),
            stand_in,
        )
        print(f"     stand-in {stand_in} made in {time.monotonic() - started:.0f} s")
    podman("tag", stand_in, BASE)
    return (
        f"a stand-in for {BASE} ({arch}): Debian bookworm from debootstrap "
        f"({image_size_mb(stand_in):.0f} MB), the registry did not answer: {why}"
    )


def build(
    tag: str,
    context: Path,
    dockerfile: Path,
    arch: str,
    logs: Path,
    build_args: dict[str, str] | None = None,
) -> float:
    """`podman build` as a Docker build: the Docker format (HEALTHCHECK kept),
    the host's network, and its CA bundle for pip and apt in RUN steps.
    Returns the seconds it took."""
    command = ["podman", "build", "--pull=never", "--layers=false", "--format=docker"]
    command += ["--network=host", f"--platform=linux/{arch}", f"--label={LABEL}=1"]
    command += ["--file", str(dockerfile), "--tag", tag]
    if HOST_CA.is_file():
        pip_conf = CACHE / "pip.conf"
        pip_conf.write_text(f"[global]\ncert = {HOST_CA}\n", encoding="utf-8")
        command += ["--volume", f"{HOST_CA}:{HOST_CA}:ro"]
        command += ["--volume", f"{pip_conf}:/etc/pip.conf:ro"]
    for name, value in (build_args or {}).items():
        command += ["--build-arg", f"{name}={value}"]
    log = logs / f"build-{tag.rsplit(':', 1)[-1]}.log"
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run(
            [*command, str(context)],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=3600,
        )
    took = time.monotonic() - started
    text = log.read_text(encoding="utf-8", errors="replace")
    expect(done.returncode == 0, f"build failed ({log}):\n{tail(text)}")
    trimmed = re.search(r"^trim-venv: .*$", text, re.M)
    if trimmed:
        print(f"     {trimmed.group(0)}")
    return took


def published(container: str) -> dict[int, int]:
    """Container port -> host port."""
    ports: dict[int, int] = {}
    for line in podman("port", container).splitlines():
        inner, _, outer = line.partition(" -> ")
        ports[int(inner.split("/")[0])] = int(outer.rsplit(":", 1)[1])
    return ports


def publish(ports: list[int]) -> list[str]:
    return [item for port in ports for item in ("--publish", f"127.0.0.1::{port}")]


def container_logs(container: str) -> str:
    """What the container wrote, stdout and stderr interleaved."""
    done = subprocess.run(
        ["podman", "logs", container],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )
    return done.stdout


def container_exited(container: str) -> str | None:
    state = podman("inspect", "--format", "{{.State.Status}}", container, check=False)
    if state in ("running", "created", ""):
        return None
    return f"{container} {state}:\n{tail(container_logs(container))}"


def stop(container: str) -> str:
    started = time.monotonic()
    podman("stop", "--time", "20", container, timeout=60)
    code = podman("inspect", "--format", "{{.State.ExitCode}}", container)
    expect(code == "0", f"exit code {code} on SIGTERM")
    return f"stopped on SIGTERM with exit 0 in {time.monotonic() - started:.1f} s"


def memory(container: str) -> str:
    usage = podman(
        "stats", "--no-stream", "--format", "{{.MemUsage}}", container, check=False
    )
    return usage.split("/")[0].strip() or "unknown"


# --- Wyoming and HTTP ---------------------------------------------------------

JOBS = {
    "asr": "asr",
    "tts": "tts",
    "wake": "wake",
    "handle": "handle",
    "intent": "handle",
}


async def describe(port: int) -> Info:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        return Info.from_event(await until(client, "info", 5))


async def wait_ready(
    services: dict[str, int], containers: list[str], timeout: float
) -> float:
    """Seconds until every service answers `describe`."""
    started = time.monotonic()
    waiting = dict(services)
    while waiting:
        for service, port in list(waiting.items()):
            with contextlib.suppress(Exception):  # not listening or not loaded yet
                await describe(port)
                del waiting[service]
        for container in containers:
            if exited := container_exited(container):
                raise CheckFailed(exited)
        if time.monotonic() - started > timeout:
            raise CheckFailed(
                f"{', '.join(waiting)} not answering after {timeout:.0f} s"
            )
        if waiting:
            await asyncio.sleep(0.25)
    return time.monotonic() - started


async def synthesize(port: int, text: str) -> bytes:
    """The spoken text as 16 kHz 16-bit mono."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text=text).event())
        start = await until(client, "audio-start", TIMEOUT_S)
        rate = int(start.data["rate"])
        width, channels = int(start.data["width"]), int(start.data["channels"])
        audio = b""
        while True:
            event = await until(client, ("audio-chunk", "audio-stop"), TIMEOUT_S)
            if event.type == "audio-stop":
                return convert(audio, rate, width, channels)
            audio += event.payload or b""


async def transcribe(port: int, audio: bytes) -> str:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await stream_audio(client, audio, realtime=False)
        return str((await until(client, "transcript", TIMEOUT_S)).data["text"])


async def detect(port: int, audio: bytes) -> str:
    """The name of the model that fired on `audio`, asking for no model by name."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Detect().event())
        await stream_audio(client, audio, realtime=False)
        event = await until(client, ("detection", "not-detected"), TIMEOUT_S)
        return str(event.data.get("name")) if event.type == "detection" else ""


async def recognize(port: int, text: str) -> dict[str, Any]:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcript(text=text).event())
        return dict((await until(client, "intent", TIMEOUT_S)).data)


def http(port: int, path: str, token: str | None, body: bytes | None = None) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method="PUT" if body is not None else "GET",
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def silence(seconds: float) -> bytes:
    return bytes(int(seconds * RATE_16K) * WIDTH)


@dataclass
class Deployment:
    """What is running: its Wyoming services and HTTP API on host ports."""

    name: str
    services: dict[str, int]  # service -> host port
    http_port: int
    token: str
    wake_model: str  # the model that listens when a client names none


def exercise(report: Report, deployment: Deployment) -> None:
    """Every advertised service does its job once."""
    name, services = deployment.name, deployment.services
    with report.check(f"{name}: HTTP API beyond loopback, behind its token") as found:
        house = (DATA / "demo_house.json").read_bytes()
        statuses = (
            http(deployment.http_port, "/api/info", None),
            http(deployment.http_port, "/api/info", deployment.token),
            http(deployment.http_port, "/api/entities", deployment.token, house),
        )
        expect(statuses == (401, 200, 200), f"401/200/200 expected, got {statuses}")
        found.append("401 without the token, 200 with it; demo house pushed")
    for service, port in services.items():
        with report.check(f"{name} {service}: describe and its job") as found:
            info = asyncio.run(describe(port))
            jobs = {job for kind, job in JOBS.items() if getattr(info, kind)}
            others = [k for k in ("mic", "snd", "satellite") if getattr(info, k)]
            expect(service in jobs, f"port {port} advertises {sorted(jobs)}")
            expect(not others, f"advertises {others}, which nothing here checks")
            for job in sorted(jobs):
                found.append(do_job(job, deployment, port))


def do_job(job: str, deployment: Deployment, port: int) -> str:
    if job == "tts":
        audio = asyncio.run(synthesize(port, CONFIRMATION))
        seconds = len(audio) / (RATE_16K * WIDTH)
        expect(seconds > 0.8, f"{seconds:.2f} s of audio for {CONFIRMATION!r}")
        return f"tts: {seconds:.2f} s of audio"
    if job == "asr":
        pcm, rate, width, channels = read_wav(DATA / "kitchen.wav")
        text = asyncio.run(transcribe(port, convert(pcm, rate, width, channels)))
        expect("kitchen lights" in text.lower(), f"transcript {text!r}")
        return f"asr: {text!r}"
    if job == "wake":
        phrase = f"{phrase_of(deployment.wake_model)}."
        if "tts" in deployment.services:
            spoken = asyncio.run(synthesize(deployment.services["tts"], phrase))
        else:  # spoken by this checkout's Piper
            spoken = speak(phrase, noise_db=None, lead_s=0, tail_s=0).audio
        fired = asyncio.run(detect(port, silence(1.0) + spoken + silence(1.0)))
        expect(fired == deployment.wake_model, f"{phrase!r} -> {fired or 'nothing'}")
        return f"wake: {phrase!r} detected as {fired}"
    intent = asyncio.run(recognize(port, COMMAND))
    expect(intent.get("name") == "HassTurnOn", f"intent {intent}")
    return f"handle: {COMMAND!r} -> {intent['name']}"


# --- What is checked ------------------------------------------------------------


def build_image(report: Report, arch: str, logs: Path) -> str:
    """docker/Dockerfile built for `arch`; returns the image's tag."""
    tag = f"localhost/{NAME}:image-{arch}"
    with report.check(f"image ({arch}): build docker/Dockerfile", needed=True) as found:
        took = build(tag, REPO, DOCKER / "Dockerfile", ARCHES[arch], logs)
        size = image_size_mb(tag)
        found.append(f"built in {took:.0f} s, {size:.0f} MB")
        report.figure(f"image ({arch}): build {took:.0f} s, image {size:.0f} MB")
    return tag


def image_phase(report: Report, logs: Path, ready_timeout: float) -> str:
    """docker/Dockerfile on amd64: build, the stack, its services, health,
    user, the README's first try, stop. Returns the image's tag."""
    arch = "amd64"
    label = f"image ({arch})"
    tag = build_image(report, arch, logs)
    token = secrets.token_hex(16)
    container = f"{NAME}-image-{arch}"
    with report.check(f"{label}: the stack starts", needed=True) as found:
        started = time.monotonic()
        podman(
            "run",
            "--detach",
            "--name",
            container,
            f"--label={LABEL}=1",
            "--env",
            f"RTVOICE_HTTP_TOKEN={token}",
            *publish([*PORTS.values(), HTTP_PORT]),
            tag,
            "stack",
            "--http-uri",
            f"http://0.0.0.0:{HTTP_PORT}",
        )
        host = published(container)
        services = {service: host[port] for service, port in PORTS.items()}
        asyncio.run(wait_ready(services, [container], ready_timeout))
        ready = time.monotonic() - started
        found.append(f"all four answer describe {ready:.1f} s after `podman run`")
        report.figure(f"{label}: start to ready {ready:.1f} s")
    exercise(report, Deployment(label, services, host[HTTP_PORT], token, "okay_nabu"))
    with report.check(f"{label}: the image's health check") as found:
        podman("healthcheck", "run", container, timeout=60)
        found.append("healthy")
    with report.check(f"{label}: runs as its non-root user") as found:
        user = podman("image", "inspect", "--format", "{{.Config.User}}", tag)
        processes = podman("top", container, "user", "args").splitlines()[1:]
        expect(user == "10001", f"USER {user!r}")
        expect(
            bool(processes) and all(p.split()[0] == "rtvoice" for p in processes),
            f"processes: {processes}",
        )
        found.append(f"USER {user}, every process runs as rtvoice")
    report.figure(f"{label}: memory {memory(container)} with the stack up")
    with report.check(f"{label}: `converse kitchen.wav`, the first try") as found:
        out = podman(
            "run", "--rm", f"--label={LABEL}=1", tag, "converse", "kitchen.wav"
        )
        expect("HassTurnOn" in out, f"no intent in:\n{tail(out)}")
        found.append(next(line for line in out.splitlines() if "first audio" in line))
    with report.check(f"{label}: stop") as found:
        found.append(stop(container))
    return tag


def discovery(supervisor: str, count: int, timeout: float = 30.0) -> list[Any]:
    """The first `count` requests the stand-in Supervisor received."""
    deadline = time.monotonic() + timeout
    while True:
        lines = podman("logs", supervisor).splitlines()
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines[:count]]
        time.sleep(0.5)


def expected_discovery(token: str) -> list[Any]:
    messages = [
        {"service": "wyoming", "config": {"uri": f"tcp://{ADDON_HOSTNAME}:{port}"}}
        for port in PORTS.values()
    ] + [
        {
            "service": "rtvoice",
            "config": {"host": ADDON_HOSTNAME, "port": HTTP_PORT, "token": token},
        }
    ]
    return [["/discovery", f"Bearer {SUPERVISOR_TOKEN}", m] for m in messages]


def addon_phase(
    report: Report, arch: str, logs: Path, work: Path, ready_timeout: float
) -> None:
    """docker/addon built from a wheel of the checkout and run as the
    Supervisor runs it, beside a stand-in Supervisor."""
    config = yaml.safe_load((ADDON / "config.yaml").read_text(encoding="utf-8"))
    build_config = yaml.safe_load((ADDON / "build.yaml").read_text(encoding="utf-8"))
    context = work / "addon"
    shutil.copytree(
        ADDON, context, ignore=shutil.ignore_patterns("wheels", "__pycache__")
    )
    tag = f"localhost/{NAME}:addon-{arch}"
    with report.check(
        "add-on: build, from a wheel of the checkout", needed=True
    ) as found:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
            + ["--wheel-dir", str(context / "wheels"), str(REPO)],
            check=True,
            capture_output=True,
            timeout=600,
        )
        # The build arguments the Supervisor gives, build.yaml's included.
        build_args = {
            "BUILD_FROM": build_config["build_from"][arch],
            "BUILD_ARCH": arch,
            "BUILD_VERSION": str(config["version"]),
            **build_config["args"],
        }
        took = build(
            tag, context, context / "Dockerfile", ARCHES[arch], logs, build_args
        )
        size = image_size_mb(tag)
        found.append(f"built in {took:.0f} s, {size:.0f} MB")
        report.figure(f"add-on ({arch}): build {took:.0f} s, image {size:.0f} MB")
    data = work / "data"
    data.mkdir()
    options = {**config["options"], **ADDON_OPTIONS}
    (data / "options.json").write_text(json.dumps(options), encoding="utf-8")
    supervisor, addon = f"{NAME}-supervisor", f"{NAME}-addon"
    with report.check(
        "add-on: starts as the Supervisor starts it", needed=True
    ) as found:
        # The stand-in Supervisor owns the network namespace: `supervisor` is
        # its loopback, and the add-on's ports are published from it.
        podman(
            "run",
            "--detach",
            "--name",
            supervisor,
            f"--label={LABEL}=1",
            "--hostname",
            ADDON_HOSTNAME,
            "--add-host",
            "supervisor:127.0.0.1",
            *publish([*PORTS.values(), HTTP_PORT]),
            "--volume",
            f"{REPO / 'testing' / 'fake_supervisor.py'}:/fake_supervisor.py:ro",
            tag,
            "python",
            "/fake_supervisor.py",
            "80",
        )
        started = time.monotonic()
        podman(
            "run",
            "--detach",
            "--name",
            addon,
            f"--label={LABEL}=1",
            f"--network=container:{supervisor}",
            f"--uts=container:{supervisor}",
            "--init",  # config.yaml's `init: true`
            "--env",
            f"SUPERVISOR_TOKEN={SUPERVISOR_TOKEN}",
            "--volume",
            f"{data}:/data",
            tag,
        )
        host = published(supervisor)
        services = {service: host[port] for service, port in PORTS.items()}
        asyncio.run(wait_ready(services, [supervisor, addon], ready_timeout))
        ready = time.monotonic() - started
        found.append(f"all four answer describe {ready:.1f} s after `podman run`")
        report.figure(f"add-on ({arch}): start to ready {ready:.1f} s")
    token_file = data / "http_token"
    token = (
        token_file.read_text(encoding="utf-8").strip() if token_file.is_file() else ""
    )
    with report.check("add-on: a token made once and kept in /data") as found:
        mode = token_file.stat().st_mode & 0o777
        expect(len(token) >= 32 and mode == 0o600, f"{len(token)} chars, mode {mode:o}")
        found.append(f"{len(token)} characters, mode {mode:o}")
    with report.check("add-on: discovery reaches the Supervisor") as found:
        received = discovery(supervisor, 5)
        expect(received == expected_discovery(token), f"received {received}")
        found.append(
            f"4 x wyoming tcp://{ADDON_HOSTNAME}:PORT, rtvoice "
            f"http://{ADDON_HOSTNAME}:{HTTP_PORT} with the token"
        )
    # wake_models: the wake check listens for hey_jarvis, naming no model.
    deployment = Deployment("add-on", services, host[HTTP_PORT], token, "hey_jarvis")
    exercise(report, deployment)
    with report.check("add-on: options become the stack's configuration") as found:
        logged = container_logs(addon)
        expect(bool(re.search("^DEBUG:", logged, re.M)), "debug_logging, no DEBUG line")
        processes = podman("top", addon, "args")
        expect(token not in processes, "the token is on a command line")
        found.append("wake_models: hey_jarvis heard; debug_logging: DEBUG lines")
        found.append("the token in the environment, on no command line")
    with report.check("add-on: stop, start again with the same token") as found:
        found.append(stop(addon))
        podman("start", addon)
        asyncio.run(wait_ready(services, [supervisor, addon], ready_timeout))
        again = discovery(supervisor, 10)[5:]
        expect(again == expected_discovery(token), f"received {again}")
        found.append("the same 5 discovery messages, the same token")
        found.append(stop(addon))


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def compose_phase(report: Report, image: str, ready_timeout: float) -> None:
    """docker/compose.yaml brought up with podman-compose from the built image."""
    compose_file = DOCKER / "compose.yaml"
    config = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    services = {name: PORTS[name] for name in config["services"]}
    (compose_image,) = {service["image"] for service in config["services"].values()}
    podman("tag", image, compose_image)
    token = secrets.token_hex(16)
    env = {**os.environ, "RTVOICE_HTTP_TOKEN": token, "ANTHROPIC_API_KEY": ""}
    command = ["podman-compose", "--file", str(compose_file), "--project-name", NAME]
    try:
        with report.check(
            "compose: four services in their own containers", needed=True
        ) as found:
            expect(
                bool(shutil.which("podman-compose")), "podman-compose is not installed"
            )
            busy = [
                port for port in [*services.values(), HTTP_PORT] if not port_free(port)
            ]
            expect(
                not busy, f"ports {busy} are taken here; compose.yaml publishes them"
            )
            started = time.monotonic()
            done = subprocess.run(
                [*command, "up", "--detach", "--no-build"],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            expect(done.returncode == 0, f"up failed:\n{tail(done.stderr)}")
            project = f"label=io.podman.compose.project={NAME}"
            containers = podman(
                "ps", "--filter", project, "--format", "{{.Names}}"
            ).split()
            expect(len(containers) == len(services), f"containers {containers}")
            asyncio.run(wait_ready(services, containers, ready_timeout))
            ready = time.monotonic() - started
            found.append(
                f"{', '.join(sorted(containers))} answer {ready:.1f} s after up"
            )
            report.figure(f"compose: start to ready {ready:.1f} s")
        exercise(report, Deployment("compose", services, HTTP_PORT, token, "okay_nabu"))
        with report.check("compose: each container's health check") as found:
            for container in containers:
                podman("healthcheck", "run", container, timeout=60)
            found.append(f"{len(containers)} healthy")
    finally:
        subprocess.run([*command, "down"], env=env, capture_output=True, timeout=300)


def emulated_phase(report: Report, logs: Path, ready_timeout: float) -> None:
    """The aarch64 image under qemu: the build, then asr, wake and handle,
    each in its own container. Not tts: onnxruntime crashes at import under
    qemu-user (Debian bookworm's 7.2), in a plain virtual environment too."""
    with report.check("aarch64: emulation", needed=True) as found:
        expect((why := emulation()) is None, f"cannot emulate aarch64: {why}")
        found.append(use_base("arm64"))
        report.figure(f"base (aarch64): {found[-1]}")
    tag = build_image(report, "aarch64", logs)
    label = "image (aarch64, emulated)"
    token = secrets.token_hex(16)
    services: dict[str, int] = {}
    with report.check(f"{label}: asr, wake, handle start", needed=True) as found:
        started = time.monotonic()
        containers = [f"{NAME}-{service}-aarch64" for service in ("asr", "wake")]
        for container, service in zip(containers, ("asr", "wake")):
            port = PORTS[service]
            podman(
                *("run", "--detach", "--name", container, f"--label={LABEL}=1"),
                *publish([port]),
                *(tag, service, "--uri", f"tcp://0.0.0.0:{port}"),
            )
            services[service] = published(container)[port]
        handle = f"{NAME}-handle-aarch64"
        podman(
            *("run", "--detach", "--name", handle, f"--label={LABEL}=1"),
            *("--env", f"RTVOICE_HTTP_TOKEN={token}"),
            *publish([PORTS["handle"], HTTP_PORT]),
            *(tag, "handle", "--uri", f"tcp://0.0.0.0:{PORTS['handle']}"),
            *("--http-uri", f"http://0.0.0.0:{HTTP_PORT}"),
        )
        ports = published(handle)
        services["handle"] = ports[PORTS["handle"]]
        asyncio.run(wait_ready(services, [*containers, handle], ready_timeout))
        ready = time.monotonic() - started
        found.append(f"all three answer describe {ready:.0f} s after `podman run`")
        report.figure(f"{label}: asr, wake, handle start to ready {ready:.0f} s")
    exercise(report, Deployment(label, services, ports[HTTP_PORT], token, "okay_nabu"))


def amd64(report: Report, logs: Path) -> None:
    with report.check("base image (amd64)") as found:
        found.append(use_base("amd64"))
        report.figure(f"base (amd64): {found[-1]}")
    image = ""
    with contextlib.suppress(CheckFailed):
        image = image_phase(report, logs, 600)
    with contextlib.suppress(CheckFailed), tempfile.TemporaryDirectory() as work:
        addon_phase(report, "amd64", logs, Path(work), 600)
    if image:
        with contextlib.suppress(CheckFailed):
            compose_phase(report, image, 600)


def emulation() -> str | None:
    """Why aarch64 cannot be emulated here, or None once it can."""
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if entry.is_file():
        return None
    conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
    if not conf.is_file():
        return "no qemu-user-static (Debian's package registers qemu-aarch64)"
    if os.geteuid() != 0:
        return "qemu-aarch64 is not registered and registering it needs root"
    register = Path("/proc/sys/fs/binfmt_misc/register")
    if not register.exists():
        subprocess.run(
            ["mount", "-t", "binfmt_misc", "binfmt_misc", str(register.parent)],
            check=True,
        )
    register.write_bytes(conf.read_bytes().strip())
    return None if entry.is_file() else "registering qemu-aarch64 failed"


def remove_containers() -> None:
    """Every container this script started, an interrupted run's included."""
    containers = podman(
        "ps", "--all", "--quiet", "--filter", f"label={LABEL}", check=False
    )
    for container in containers.split():
        podman("rm", "--force", "--depend", container, check=False)


def cleanup(before: set[str]) -> None:
    """Remove the containers started and the images built here (labelled,
    or their untagged build stages); the base images stay."""
    remove_containers()
    ours = set(
        podman("images", "--quiet", "--no-trunc", "--filter", f"label={LABEL}").split()
    )
    untagged = podman(
        "images", "--all", "--quiet", "--no-trunc", "--filter", "dangling=true"
    ).split()
    for image in ours | (set(untagged) - before):
        podman("rmi", "--force", image, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="script/docker-test",
        description="Build the image, the add-on and compose.yaml from the "
        "working tree with Podman and check them over Wyoming.",
    )
    parser.add_argument(
        "--arch",
        choices=["amd64", "aarch64", "all"],
        default="amd64",
        help="amd64 (the default): the image, the add-on and compose; aarch64: "
        "the image under qemu emulation (slow); all: both",
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the containers and images built"
    )
    args = parser.parse_args()
    if not shutil.which("podman"):
        sys.exit("docker-test: podman is not installed (apt-get install podman runc)")
    CACHE.mkdir(parents=True, exist_ok=True)
    logs = CACHE / "logs"
    logs.mkdir(exist_ok=True)
    os.environ["CONTAINERS_CONF"] = str(runtime_config())
    report = Report()
    started = time.monotonic()
    remove_containers()
    before = image_ids()
    try:
        if args.arch in ("amd64", "all"):
            amd64(report, logs)
        if args.arch in ("aarch64", "all"):
            with contextlib.suppress(CheckFailed):
                emulated_phase(report, logs, 1800)
    finally:
        if not args.keep:
            cleanup(before)
        with contextlib.suppress(CheckFailed):
            use_base("amd64")  # the name points at this machine's own again
    print(f"\nfigures (build logs in {logs}):")
    for line in report.figures:
        print(f"  {line}")
    print(f"docker-test: {time.monotonic() - started:.0f} s in all")
    print(f"{report.passed} passed, {len(report.failed)} failed")
    sys.exit(1 if report.failed else 0)


if __name__ == "__main__":
    main()
