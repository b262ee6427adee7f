"""Install paths: the Docker image, the compose file, the Home Assistant add-on
and the README's quick start, checked without a container engine or a
Supervisor (script/docker-test builds and runs them).

What runs for real: the CLI's parser on every command the files hold, the
add-on's start script against the running stack and a stand-in Supervisor,
the image's health check against the running stack, the dependency tree
resolved for aarch64 on the package index, and the README's quick start in a
fresh clone of the committed HEAD.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import dockerfile
import pytest
import voluptuous as vol
import yaml
from compose_spec import PyCompose
from packaging.requirements import Requirement

from bench.fake_supervisor import Received, server
from wyoming_rtvoice.__main__ import build_parser
from wyoming_rtvoice.stack import PORTS
from wyoming_rtvoice.wake.engines import builtin_models

from .conftest import Stack, free_port

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
ADDON = DOCKER / "addon"
README = (REPO / "README.md").read_text(encoding="utf-8")
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))[
    "project"
]
VERSION = PROJECT["version"]
IMAGE_PORTS = {10200, 10300, 10400, 10500, 10580, 10600}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def option_strings(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        option: action for action in parser._actions for option in action.option_strings
    }


# --- The Home Assistant add-on format, from the developer docs ---------------

ARCHES = ["armhf", "armv7", "aarch64", "amd64", "i386"]
PORT_KEY = vol.Match(r"^\d{1,5}/(tcp|udp)$")
MAP_TYPES = [
    "homeassistant_config",
    "addon_config",
    "ssl",
    "addons",
    "backup",
    "share",
    "media",
    "all_addon_configs",
    "data",
]
PRIVILEGES = [
    "BPF",
    "CHECKPOINT_RESTORE",
    "DAC_READ_SEARCH",
    "IPC_LOCK",
    "NET_ADMIN",
    "NET_RAW",
    "PERFMON",
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
]
TYPE_STRING = re.compile(r"^(?P<name>[a-z]+)(\((?P<args>.*)\))?(?P<optional>\?)?$")


def _number(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise vol.Invalid(f"expected {kind.__name__}")
        if kind is int and not isinstance(value, int):
            raise vol.Invalid("expected int")
        return value

    return check


def _bounds(args: str | None, kind: type) -> dict[str, Any]:
    if not args:
        return {}
    low, _, high = args.partition(",")
    return {"min": kind(low) if low else None, "max": kind(high) if high else None}


def option_type(type_string: str) -> Any:
    """The validator for one option type string (`int(5,20)`, `list(a|b)`, ...);
    vol.Invalid when it is not one the Supervisor knows."""
    match = TYPE_STRING.match(type_string) if isinstance(type_string, str) else None
    if match is None:
        raise vol.Invalid(f"not an option type: {type_string!r}")
    name, args = match["name"], match["args"]
    if name == "str":
        return vol.All(str, vol.Length(**_bounds(args, int)))
    if name in ("int", "float"):
        kind = int if name == "int" else float
        return vol.All(_number(kind), vol.Range(**_bounds(args, kind)))
    if name == "list" and args and "" not in args.split("|"):
        return vol.In(args.split("|"))
    if name == "match" and args:
        return vol.All(str, vol.Match(args))
    simple = {
        "bool": bool,
        "email": vol.Email(),
        "url": vol.Url(),
        "password": str,
        "port": vol.All(_number(int), vol.Range(1, 65535)),
        "device": str,
    }
    if name in simple and (args is None or name == "device"):
        return simple[name]
    raise vol.Invalid(f"not an option type: {type_string!r}")


def valid_type(type_string: Any) -> Any:
    option_type(type_string)
    return type_string


SCHEMA_ENTRY = vol.Any(
    valid_type,
    vol.All([valid_type], vol.Length(min=1, max=1)),
    {str: valid_type},
    vol.All([{str: valid_type}], vol.Length(min=1, max=1)),
)
FLAGS_BOOL = [
    "host_network",
    "host_ipc",
    "host_dbus",
    "host_pid",
    "host_uts",
    "hassio_api",
    "homeassistant_api",
    "docker_api",
    "full_access",
    "audio",
    "video",
    "gpio",
    "usb",
    "uart",
    "udev",
    "devicetree",
    "kernel_modules",
    "stdin",
    "legacy",
    "tmpfs",
    "auth_api",
    "ingress",
    "ingress_stream",
    "panel_admin",
    "advanced",
    "init",
    "realtime",
    "journald",
]
ADDON_KEYS: dict[Any, Any] = {
    vol.Required("name"): str,
    vol.Required("version"): str,
    vol.Required("slug"): vol.Match(r"^[a-z0-9_]+$"),
    vol.Required("description"): str,
    vol.Required("arch"): vol.All([vol.In(ARCHES)], vol.Length(min=1)),
    vol.Optional("machine"): [str],
    vol.Optional("url"): vol.Url(),
    vol.Optional("startup"): vol.In(
        ["initialize", "system", "services", "application", "once"]
    ),
    vol.Optional("webui"): str,
    vol.Optional("boot"): vol.In(["auto", "manual", "manual_only"]),
    vol.Optional("ports"): {PORT_KEY: vol.Any(None, vol.Range(1, 65535))},
    vol.Optional("ports_description"): {PORT_KEY: str},
    vol.Optional("devices"): [str],
    vol.Optional("homeassistant"): str,
    vol.Optional("hassio_role"): vol.In(
        ["default", "homeassistant", "backup", "manager", "admin"]
    ),
    vol.Optional("privileged"): [vol.In(PRIVILEGES)],
    vol.Optional("apparmor"): vol.Any(bool, str),
    vol.Optional("map"): [
        vol.Any(
            vol.Match(rf"^({'|'.join(MAP_TYPES)}|config)(:(rw|ro))?$"),
            {
                vol.Required("type"): vol.In(MAP_TYPES),
                vol.Optional("read_only"): bool,
                vol.Optional("path"): vol.Match(r"^/.+"),
            },
        )
    ],
    vol.Optional("environment"): {str: str},
    vol.Optional("options"): {str: object},
    vol.Optional("schema"): vol.Any(False, {str: SCHEMA_ENTRY}),
    vol.Optional("image"): str,
    vol.Optional("codenotary"): vol.Email(),
    vol.Optional("timeout"): vol.All(int, vol.Range(min=1)),
    vol.Optional("discovery"): [str],
    vol.Optional("services"): [vol.Match(r"^\w+:(provide|want|need)$")],
    vol.Optional("ingress_port"): vol.All(int, vol.Range(0, 65535)),
    vol.Optional("ingress_entry"): str,
    vol.Optional("panel_icon"): str,
    vol.Optional("panel_title"): str,
    vol.Optional("backup"): vol.In(["hot", "cold"]),
    vol.Optional("backup_pre"): str,
    vol.Optional("backup_post"): str,
    vol.Optional("backup_exclude"): [str],
    vol.Optional("stage"): vol.In(["stable", "experimental", "deprecated"]),
    vol.Optional("watchdog"): vol.Match(
        r"^(https?|tcp|\[PROTO:\w+\])://\[HOST\]:\[PORT:\d+\]"
    ),
    vol.Optional("breaking_versions"): [str],
    vol.Optional("ulimits"): {str: object},
}
ADDON_KEYS.update({vol.Optional(key): bool for key in FLAGS_BOOL})
ADDON_CONFIG = vol.Schema(ADDON_KEYS)


def option_validator(entry: Any) -> Any:
    """A schema entry: a type string, a list of one entry, or a dict of them."""
    if isinstance(entry, list):
        return [option_validator(entry[0])]
    if isinstance(entry, dict):
        return {name: option_validator(kind) for name, kind in entry.items()}
    return option_type(entry)


def options_schema(schema: dict[str, Any]) -> vol.Schema:
    """How the Supervisor checks `options` against `schema`: a type ending in
    `?` is optional (and then has no default); any other is required."""
    keys: dict[Any, Any] = {}
    for key, entry in schema.items():
        optional = isinstance(entry, str) and entry.endswith("?")
        keys[vol.Optional(key) if optional else vol.Required(key)] = option_validator(
            entry
        )
    return vol.Schema(keys)


@pytest.fixture(scope="module")
def addon_config() -> dict[str, Any]:
    config: dict[str, Any] = load_yaml(ADDON / "config.yaml")
    return config


@pytest.fixture(scope="module")
def addon_run() -> ModuleType:
    return load_script(ADDON / "run.py")


def test_addon_config_follows_the_addon_format(addon_config: dict[str, Any]) -> None:
    ADDON_CONFIG(addon_config)
    options_schema(addon_config["schema"])(addon_config["options"])
    for key, entry in addon_config["schema"].items():
        if isinstance(entry, str) and entry.endswith("?"):
            assert key not in addon_config["options"], f"{key}: optional, no default"


@pytest.mark.parametrize(
    "change",
    [
        {"arch": ["x86"]},
        {"slug": "RT Voice"},
        {"ports": {"10200": 10200}},
        {"startup": "later"},
        {"schema": {"size": "integer"}},
        {"schema": {"size": "int(5,20"}},
        {"schema": {"pick": "list()"}},
        {"discovery": "wyoming"},
        {"no_such_key": True},
    ],
)
def test_addon_format_schema_rejects_what_the_supervisor_would(
    addon_config: dict[str, Any], change: dict[str, Any]
) -> None:
    with pytest.raises(vol.Invalid):
        ADDON_CONFIG({**addon_config, **change})


def test_addon_options_are_checked_against_their_types(
    addon_config: dict[str, Any],
) -> None:
    check = options_schema(addon_config["schema"])
    for bad in (
        {"wake_engine": "porcupine"},
        {"wake_models": ["hey_siri"]},
        {"asr_budget_ms": 0},
        {"debug_logging": "yes"},
        {"anthropic_base_url": "not a url"},
    ):
        with pytest.raises(vol.Invalid):
            check({**addon_config["options"], **bad})
    missing = dict(addon_config["options"])
    del missing["voice"]
    with pytest.raises(vol.Invalid):
        check(missing)


def test_addon_identity_ports_and_discovery(addon_config: dict[str, Any]) -> None:
    assert addon_config["version"] == VERSION
    assert addon_config["discovery"] == ["wyoming", "rtvoice"]
    ports = {int(key.split("/")[0]) for key in addon_config["ports"]}
    assert ports == IMAGE_PORTS
    build = load_yaml(ADDON / "build.yaml")
    assert set(build["build_from"]) == set(addon_config["arch"])
    # Not on the index: a clone builds the repository's own source.
    spec = Requirement(build["args"]["RTVOICE_PIP_SPEC"])
    repository = load_yaml(REPO / "repository.yaml")
    assert spec.name == PROJECT["name"]
    assert spec.url is not None
    assert spec.url.startswith(f"{repository['url']}/archive/")
    translations = load_yaml(ADDON / "translations" / "en.yaml")
    assert set(translations["configuration"]) == set(addon_config["schema"])
    assert set(translations["network"]) == set(addon_config["ports"])
    for name in ("DOCS.md", "README.md", "Dockerfile", "run.py"):
        assert (ADDON / name).is_file(), name


def test_every_addon_option_lands_in_the_stack_configuration(
    addon_config: dict[str, Any], addon_run: ModuleType
) -> None:
    options, secrets = addon_run.OPTIONS, addon_run.SECRETS
    assert set(options) | set(secrets) == set(addon_config["schema"])
    assert not set(options) & set(secrets)
    config = addon_run.stack_config(addon_config["options"])
    for option, value in addon_config["options"].items():
        part, name = options[option]
        landed = getattr(getattr(config, part), name)
        assert landed == (tuple(value) if isinstance(value, list) else value), option
    changed = addon_run.stack_config(
        {**addon_config["options"], "voice": "/share/voice.onnx", "debug_logging": True}
    )
    assert changed.tts.voice == "/share/voice.onnx" and changed.server.debug
    assert config.server.state_dir == Path("/data")


def test_addon_choices_are_what_the_services_offer(
    addon_config: dict[str, Any],
) -> None:
    engine = option_strings(subcommands()["wake"])["--engine"]
    schema = addon_config["schema"]
    assert schema["wake_engine"] == f"list({'|'.join(engine.choices or [])})"
    offered = {m.name for e in engine.choices or [] for m in builtin_models(e)}
    names = re.fullmatch(r"list\((.*)\)", schema["wake_models"][0])
    assert names is not None and set(names[1].split("|")) <= offered
    options = addon_config["options"]
    engine_models = {m.name for m in builtin_models(options["wake_engine"])}
    assert set(options["wake_models"]) <= engine_models


def test_addon_secrets_go_to_the_environment_not_the_command_line(
    addon_config: dict[str, Any], addon_run: ModuleType
) -> None:
    options = {
        **addon_config["options"],
        "anthropic_api_key": "sk-ant-secret",
        "http_token": "http-secret",
        "pipeline_token": "pipeline-secret",
        "anthropic_base_url": "http://proxy.local:8080",
    }
    config = addon_run.stack_config(options)
    assert "secret" not in repr(config)
    assert addon_run.environment(options) == {
        "ANTHROPIC_API_KEY": "sk-ant-secret",
        "RTVOICE_HTTP_TOKEN": "http-secret",
        "RTVOICE_PIPELINE_TOKEN": "pipeline-secret",
    }
    assert config.server.http_uri == "http://0.0.0.0:10580"
    assert config.pipeline_host == "0.0.0.0"
    assert config.handle.anthropic_base_url == "http://proxy.local:8080"
    plain = addon_run.stack_config(addon_config["options"])
    assert urlparse(plain.server.http_uri).hostname == "127.0.0.1"
    assert plain.pipeline_host == "127.0.0.1"
    assert addon_run.environment(addon_config["options"]) == {}


def test_addon_makes_an_http_token_once_and_opens_the_api_behind_it(
    addon_config: dict[str, Any], addon_run: ModuleType, tmp_path: Path
) -> None:
    token_file = tmp_path / "http_token"
    options = addon_run.with_http_token(addon_config["options"], token_file)
    token = options["http_token"]
    assert len(token) >= 32 and token_file.read_text(encoding="utf-8") == token
    assert token_file.stat().st_mode & 0o777 == 0o600
    again = addon_run.with_http_token(addon_config["options"], token_file)
    assert again["http_token"] == token, "kept across restarts"
    mine = {**addon_config["options"], "http_token": "the user's"}
    assert addon_run.with_http_token(mine, token_file) == mine
    config = addon_run.stack_config(options)
    assert token not in repr(config)
    assert config.server.http_uri == "http://0.0.0.0:10580"
    assert addon_run.environment(options) == {"RTVOICE_HTTP_TOKEN": token}


def test_the_repository_is_an_addon_repository_with_this_addon() -> None:
    """What the Supervisor reads in a clone: repository.yaml at the root, and
    an add-on wherever a config.json/yaml/yml lies outside hidden folders and
    `rootfs`."""
    repository = load_yaml(REPO / "repository.yaml")
    vol.Schema(
        {
            vol.Required("name"): str,
            vol.Optional("url"): vol.Url(),
            vol.Optional("maintainer"): str,
        }
    )(repository)
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    addons = [
        path
        for path in map(Path, files)
        if path.stem == "config"
        and path.suffix in (".json", ".yaml", ".yml")
        and not any(part.startswith(".") or part == "rootfs" for part in path.parts)
    ]
    assert addons == [Path("docker/addon/config.yaml")]


# --- Dockerfiles and compose -------------------------------------------------


def instructions(path: Path) -> tuple[Any, ...]:
    """The Dockerfile as Docker's own parser (BuildKit's, via `dockerfile`) reads it."""
    return tuple(dockerfile.parse_file(str(path)))


def by_name(steps: tuple[Any, ...]) -> dict[str, Any]:
    return {step.cmd.upper(): step for step in steps}  # the last of each


def stages(steps: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    starts = [index for index, step in enumerate(steps) if step.cmd.upper() == "FROM"]
    return [steps[start:end] for start, end in zip(starts, starts[1:] + [len(steps)])]


def test_image_dockerfile() -> None:
    steps = instructions(DOCKER / "Dockerfile")
    build, run = stages(steps)
    given = by_name(run)
    assert build[0].value == ("python:3.11-slim-bookworm", "AS", "build")
    assert run[0].value == ("python:3.11-slim-bookworm",)
    assert any(
        s.cmd.upper() == "RUN" and re.search(r"pip .*install \.(\s|$)", s.value[0])
        for s in build
    )
    assert any(s.cmd.upper() == "RUN" and "trim-venv " in s.value[0] for s in build)
    assert any(s.flags == ("--from=build",) for s in run if s.cmd.upper() == "COPY")
    user = given["USER"].value[0]
    assert int(user.split(":")[0]) > 0, "a numeric user that is not root"
    assert {int(port) for port in given["EXPOSE"].value} == IMAGE_PORTS
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    kept = [line[1:].rstrip("/") for line in ignore.splitlines() if line[:1] == "!"]
    copies = [
        step
        for step in steps
        if step.cmd.upper() == "COPY" and not step.flags[:1] == ("--from=build",)
    ]
    for source in (source for copy in copies for source in copy.value[:-1]):
        assert (REPO / source).exists(), source
        assert any(
            source == path or source.startswith(f"{path}/") for path in kept
        ), f"{source} is left out of the build context"
    sample = (
        "wyoming_rtvoice/data/kitchen.wav",
        f"{given['WORKDIR'].value[0]}/kitchen.wav",
    )
    assert any(
        copy.value == sample and f"--chown={user}" in copy.flags for copy in copies
    ), "the sample is where `converse kitchen.wav` finds it"
    health = given["HEALTHCHECK"]
    assert health.json and health.value[0] == "CMD"
    assert any(
        copy.value == ("docker/healthcheck.py", health.value[2]) for copy in copies
    )
    assert given["ENTRYPOINT"].json and given["CMD"].json
    assert given["ENTRYPOINT"].value == ("python", "-m", "wyoming_rtvoice")
    assert build_parser().parse_args(list(given["CMD"].value)).service == "stack"


def test_addon_dockerfile() -> None:
    steps = instructions(ADDON / "Dockerfile")
    assert steps[0].cmd.upper() == "ARG"
    assert steps[0].value == ("BUILD_FROM=python:3.11-slim-bookworm",)
    build, run = stages(steps[1:])
    given = by_name(run)
    assert build[0].value == ("${BUILD_FROM}", "AS", "build")
    assert run[0].value == ("${BUILD_FROM}",)
    install = by_name(build)["RUN"].value[0]
    for part in ("/tmp/addon/wheels", "${RTVOICE_PIP_SPEC}", "trim-venv.sh"):
        assert part in install, part
    for copy in (s for s in steps if s.cmd.upper() == "COPY" and not s.flags):
        assert all((ADDON / source).exists() for source in copy.value[:-1])
    assert given["CMD"].json and given["CMD"].value == ("python", "/run.py")
    assert ("io.hass.type", '"addon"') == given["LABEL"].value[:2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml, valid by the Compose specification (the `compose-spec`
    parser, given the YAML with its merge keys expanded as Compose does)."""
    config: dict[str, Any] = load_yaml(DOCKER / "compose.yaml")
    PyCompose.from_json(json.dumps(config))
    return config


def test_compose_spec_parser_rejects_what_compose_would(
    compose: dict[str, Any],
) -> None:
    tts = compose["services"]["tts"]
    for bad in ({"portz": ["10200:10200"]}, {"healthcheck": {"test": 5}}):
        with pytest.raises(ValueError):
            PyCompose.from_json(json.dumps({"services": {"tts": {**tts, **bad}}}))


def test_compose_runs_each_service_in_its_own_container(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == set(PORTS)
    for name, service in services.items():
        assert service["image"] == f"wyoming-rtvoice:{VERSION}"
        build = service["build"]
        assert (DOCKER / build["context"]).resolve() == REPO
        assert (REPO / build["dockerfile"]).is_file()
        args = build_parser().parse_args(service["command"])
        assert args.service == name
        port = urlparse(args.uri).port
        assert port == PORTS[name]
        assert f"{port}:{port}" in service["ports"]
        assert service["healthcheck"]["test"][-1] == str(port)
        assert not any(
            "key" in item.lower() or "token" in item.lower()
            for item in service["command"]
        ), "secrets belong in the environment"
        if args.http_uri and urlparse(args.http_uri).hostname != "127.0.0.1":
            assert "RTVOICE_HTTP_TOKEN" in service["environment"]
            assert f"{urlparse(args.http_uri).port}:" in " ".join(service["ports"])


# --- The health check and the add-on's discovery, against the shared stack --


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and closes them without a word."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
                connection.close()
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


def healthcheck(*ports: int) -> int:
    return subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py"), *map(str, ports)],
        timeout=30,
    ).returncode


def test_healthcheck_pings_the_listening_services(
    stack: Stack, silent_port: int
) -> None:
    nothing = free_port()
    assert healthcheck(*(stack.ports[name] for name in PORTS)) == 0
    assert healthcheck(stack.ports["handle"], nothing) == 0  # a single service
    assert healthcheck(nothing) == 1
    assert healthcheck(stack.ports["handle"], silent_port) == 1


@pytest.fixture
def supervisor() -> Iterator[tuple[str, list[Received]]]:
    received: list[Received] = []
    stand_in = server("127.0.0.1", 0, received)
    thread = threading.Thread(target=stand_in.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{stand_in.server_address[1]}", received
    stand_in.shutdown()
    stand_in.server_close()
    thread.join(timeout=5)


def test_addon_announces_each_service_and_the_api_once_up(
    addon_run: ModuleType,
    stack: Stack,
    supervisor: tuple[str, list[Received]],
) -> None:
    url, received = supervisor
    sent = addon_run.announce(
        "supervisor-token",
        "abc123-rtvoice",
        "http-token",
        supervisor_url=url,
        health_url=f"{stack.http}/health",
        timeout_s=30,
    )
    assert sent == 5
    messages = [
        {"service": "wyoming", "config": {"uri": f"tcp://abc123-rtvoice:{port}"}}
        for port in PORTS.values()
    ] + [
        {
            "service": "rtvoice",
            "config": {"host": "abc123-rtvoice", "port": 10580, "token": "http-token"},
        }
    ]
    assert received == [
        ("/discovery", "Bearer supervisor-token", message) for message in messages
    ]


def test_addon_does_not_announce_a_stack_that_never_came_up(
    addon_run: ModuleType, supervisor: tuple[str, list[Received]]
) -> None:
    url, received = supervisor
    sent = addon_run.announce(
        "token",
        "host",
        supervisor_url=url,
        health_url=f"http://127.0.0.1:{free_port()}/health",
        timeout_s=1.0,
    )
    assert sent == 0 and received == []


# --- README ------------------------------------------------------------------


def readme_section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert match is not None, f"README has no '## {title}' section"
    return match.group(1)


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of the committed HEAD, sharing this checkout's .venv."""
    target = tmp_path_factory.mktemp("fresh") / "wyoming-rtvoice"
    subprocess.run(
        ["git", "clone", "--quiet", str(REPO), str(target)], check=True, timeout=60
    )
    (target / ".venv").symlink_to(Path(sys.prefix))
    return target


def test_readme_quick_start_runs_a_turn_in_a_fresh_clone(clone: Path) -> None:
    quick_start = readme_section("Quick start")
    command = next(
        line
        for block in code_blocks(quick_start)
        for line in block.splitlines()
        if line.startswith("script/run converse ")
    )
    command = command.split("#", 1)[0].strip()
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    where = subprocess.run(
        [
            ".venv/bin/python",
            "-c",
            "import wyoming_rtvoice; print(wyoming_rtvoice.__file__)",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.startswith(str(clone)), "the clone's package must run"
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout
    assert "transcript: turn on the kitchen lights." in output.lower()
    assert "intent:     HassTurnOn {'name': 'Kitchen Lights'}" in output
    assert re.search(r"^waterfall \(ms from the end of speech\):$", output, re.M)
    labels = (
        "end of speech \\(last spoken sample\\)",
        "turn ended",
        "first reply audio",
    )
    for label in labels:
        assert re.search(rf"^  {label} +[+-]\d+\.\d$", output, re.M), label
    assert re.search(r"^end of speech to first audio: \d+\.\d ms$", output, re.M)
    # The README shows the same lines the command prints.
    shown = next(b for b in code_blocks(quick_start) if "waterfall" in b)
    for line in shown.splitlines():
        label = re.sub(r"[+-]?\d+\.\d.*$", "", line).rstrip()
        if label and not line.startswith("$"):
            assert label in output, f"README shows {label!r}, not printed"


def bookworm_platforms(machine: str) -> list[str]:
    """Every manylinux tag that glibc 2.36 (Debian bookworm, the images' base)
    accepts; pip does not expand a newer tag to the older ones by itself."""
    return [f"manylinux2014_{machine}"] + [
        f"manylinux_2_{minor}_{machine}" for minor in range(17, 37)
    ]


def test_every_dependency_has_an_aarch64_wheel_on_the_index(tmp_path: Path) -> None:
    """What pip in the aarch64 image (Python 3.11 on bookworm, as on a
    Raspberry Pi or Home Assistant Green) installs, resolved on the package
    index from wheels only, without downloading them."""
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet"]
    command += ["--ignore-installed", "--target", str(tmp_path / "target")]
    command += ["--report", str(report), "--only-binary=:all:"]
    command += ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    for platform in bookworm_platforms("aarch64"):
        command += ["--platform", platform]
    done = subprocess.run(
        command + PROJECT["dependencies"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    install = json.loads(report.read_text(encoding="utf-8"))["install"]
    wheels = [item["download_info"]["url"].rsplit("/", 1)[1] for item in install]
    assert all(w.endswith("-any.whl") or "aarch64" in w for w in wheels), wheels
    names = {item["metadata"]["name"].lower() for item in install}
    assert {
        "pymicro-wakeword",
        "pyopen-wakeword",
        "ctranslate2",
        "onnxruntime",
    } <= names


def test_fresh_clone_installs_with_the_sample_and_demo_house(
    clone: Path, tmp_path: Path
) -> None:
    """What `pip install .` in the image gets: the package data is committed
    and ships in the wheel."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        + ["--wheel-dir", str(tmp_path), str(clone)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("wyoming_rtvoice-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "wyoming_rtvoice/data/kitchen.wav" in names
    assert "wyoming_rtvoice/data/demo_house.json" in names
    assert "wyoming_rtvoice/house/sentences/en.yaml" in names
    assert (clone / "wyoming_rtvoice" / "data" / "kitchen.wav").stat().st_size < 200_000
    assert os.access(clone / "script" / "run", os.X_OK)
    assert os.access(clone / "script" / "test", os.X_OK)
    # The benchmarks, fakes and stand-ins stay out of what is installed.
    assert not [name for name in names if name.startswith(("bench/", "tests/"))]
    imports = re.compile(r"^\s*(from|import)\s+(bench|tests)\b", re.M)
    for path in (clone / "wyoming_rtvoice").rglob("*.py"):
        assert not imports.search(path.read_text(encoding="utf-8")), path
