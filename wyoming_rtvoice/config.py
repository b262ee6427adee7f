"""Configuration every service shares, and how each service's own becomes
flags: a frozen dataclass whose fields say their flag (`field(metadata=
flag(help))`); `add_flags` declares them, `from_flags` reads them back.

A service alone takes its flags as they are (`asr --model`); the stack and
`converse` take the same flags prefixed with the service's name
(`--asr-model`, `--tts-voice`), declared once, in the service's config.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any, TypeVar

from .limits import Limits

HTTP_TOKEN_ENV = "RTVOICE_HTTP_TOKEN"
HASS_TOKEN_ENV = "HASS_TOKEN"
PIPELINE_TOKEN_ENV = "RTVOICE_PIPELINE_TOKEN"
MIN_TOKEN_CHARS = 16  # a shorter token is guessed too soon, back-off or not

Network = IPv4Network | IPv6Network
Config = TypeVar("Config")


def flag(
    help: str,
    name: str = "",
    unit: float = 1,
    convert: Callable[[Any], Any] | None = None,
    group: str = "",
    exclusive: str = "",
    **argparse_options: Any,
) -> dict[str, Any]:
    """A field's flag, as its metadata: `--NAME` (the field's name with
    dashes unless given; in a dict field `{key}` stands for each key), its
    help, its value in `unit`s of the field's (1000: milliseconds for a field
    in seconds), `convert` from the flag's value to the field's, the argument
    group (else the config's `FLAGS`), a mutually `exclusive` group's name,
    and argparse's own options (choices, metavar, action...). The default is
    the field's own; a bool is a switch (`negatable`: --no-NAME too)."""
    spec = dict(help=help, name=name, unit=unit, convert=convert, group=group)
    return {"flag": {**spec, "exclusive": exclusive, **argparse_options}}


def nested(prefix: str = "") -> dict[str, Any]:
    """A field holding another config, whose flags are declared with this
    `prefix` before their names (`tts-`: `--tts-voice`)."""
    return {"nested": prefix}


def add_flags(parser: argparse.ArgumentParser, config: Any, prefix: str = "") -> None:
    """The flags of `config` (a config, or its class), its defaults as the
    flags' defaults, and those of the configs it holds."""
    config = config() if isinstance(config, type) else config
    groups: dict[str, Any] = {}
    for item in fields(config):
        value = getattr(config, item.name)
        if "nested" in item.metadata:
            add_flags(parser, value, prefix + item.metadata["nested"])
        if "flag" not in item.metadata:
            continue
        options = dict(item.metadata["flag"])
        title = options.pop("group") or type(config).FLAGS
        if title not in groups:  # none: the parser's own options
            groups[title] = parser.add_argument_group(title) if title else parser
        group = groups[title]
        if exclusive := options.pop("exclusive"):
            required = options.pop("required", False)
            if exclusive not in groups:
                groups[exclusive] = group.add_mutually_exclusive_group(
                    required=required
                )
            group = groups[exclusive]
        name = options.pop("name") or item.name.replace("_", "-")
        if options.pop("positional", False):
            group.add_argument(name, help=options["help"])
            continue
        for key, default in value.items() if isinstance(value, dict) else [("", value)]:
            declared = _declared(default, **options)
            declared["help"] = declared["help"].replace("{key}", key)
            group.add_argument(f"--{prefix}{name.replace('{key}', key)}", **declared)


def _declared(
    value: Any, unit: float, convert: Any, negatable: bool = False, **options: Any
) -> dict[str, Any]:
    """argparse's options for a flag whose field holds `value` by default."""
    if isinstance(value, bool) and "action" not in options:
        if not negatable:  # a switch: store_true, or store_false for --no-NAME
            return {"action": "store_false" if value else "store_true", **options}
        options["action"] = argparse.BooleanOptionalAction
    elif isinstance(value, (int, float)):
        options.setdefault("type", type(value))
        value = value * unit if unit != 1 else value
    options.setdefault("default", value)
    return options


def from_flags(cls: type[Config], args: argparse.Namespace, prefix: str = "") -> Config:
    """The config of class `cls` the flags of `add_flags(parser, cls, prefix)`
    gave (a nested config: as its parent's defaults had it)."""
    return _read(cls(), args, prefix)


def _read(config: Config, args: argparse.Namespace, prefix: str) -> Config:
    values: dict[str, Any] = {}
    for item in fields(config):  # type: ignore[arg-type]
        value = getattr(config, item.name)
        if "nested" in item.metadata:
            values[item.name] = _read(value, args, prefix + item.metadata["nested"])
        elif "flag" in item.metadata:
            spec = item.metadata["flag"]
            name = spec["name"] or item.name.replace("_", "-")
            if isinstance(value, dict):
                values[item.name] = {
                    key: _value(args, spec, prefix + name.replace("{key}", key))
                    for key in value
                }
            else:
                values[item.name] = _value(args, spec, prefix + name)
    return replace(config, **values)  # type: ignore[type-var]


def _value(args: argparse.Namespace, spec: dict[str, Any], name: str) -> Any:
    value = getattr(args, name.replace("-", "_"))
    if spec["unit"] != 1:
        value = value / spec["unit"]
    return spec["convert"](value) if spec["convert"] else value


def read_secret(path: str | None, env: str) -> str | None:
    """A secret from the file at `path`, else the environment variable `env`
    (never a flag's value: the command line is visible to every user); an
    empty one is none (it would let anyone in)."""
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except (OSError, ValueError) as err:
            raise SystemExit(f"{path}: {err}") from err
    return os.environ.get(env, "").strip() or None


def read_token(path: str | None, env: str) -> str | None:
    """A shared secret (`read_secret`) of at least MIN_TOKEN_CHARS characters."""
    token = read_secret(path, env)
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        where = path or env
        raise SystemExit(
            f"The token in {where} has {len(token)} characters; at least "
            f"{MIN_TOKEN_CHARS} are needed (e.g. `openssl rand -hex 16`)"
        )
    return token


def network(value: str) -> Network:
    """An --allow-peer value: ADDRESS or ADDRESS/BITS."""
    try:
        return ip_network(value, strict=False)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "wyoming-rtvoice"


@dataclass(frozen=True)
class ServerConfig:
    """Where a service listens and what it lets one client do."""

    uri: str = ""
    zeroconf: str | None = None  # None: not advertised; "": the default name
    http_uri: str | None = None
    http_token_file: str | None = None
    allow_peer: tuple[Network, ...] = ()
    limits: Limits = field(default_factory=Limits)
    state_dir: Path = field(default_factory=default_state_dir)
    stack_id: str | None = None
    debug: bool = False
    log_format: str = logging.BASIC_FORMAT

    @staticmethod
    def add_arguments(
        parser: argparse.ArgumentParser,
        default_uri: str | None,
        default_http_uri: str | None = None,
        idle_timeout_s: float = Limits.idle_timeout_s,
    ) -> None:
        """--uri (unless None: the stack listens by --host and ports), and the
        flags of every server."""
        group = parser.add_argument_group("server")
        if default_uri is not None:
            group.add_argument(
                "--uri",
                default=default_uri,
                help=f"tcp://HOST:PORT, unix://PATH or stdio:// ({default_uri})",
            )
        group.add_argument(
            "--zeroconf",
            nargs="?",
            const="",
            metavar="NAME",
            help="Advertise over zeroconf as _wyoming._tcp.local. (tcp only)",
        )
        group.add_argument(
            "--http-uri",
            default=default_http_uri,
            help="Serve /health, /metrics and /api/* on http://HOST:PORT "
            f"({default_http_uri or 'off'})",
        )
        group.add_argument(
            "--http-token-file",
            help="File holding the bearer token for the HTTP API (or set "
            f"{HTTP_TOKEN_ENV}); required when it listens beyond loopback",
        )
        group.add_argument(
            "--allow-peer",
            action="append",
            type=network,
            default=[],
            metavar="ADDRESS[/BITS]",
            help="A trusted client: only trusted clients hear the "
            "house's state and reach the LLM (handle), send run-satellite "
            "(satellite), and get the connection slots kept for them; default: "
            "loopback, the --hass-url host and the address the rtvoice "
            "integration pushed the house from (the satellite: its first "
            "client, kept in --state-dir)",
        )
        group.add_argument(
            "--max-payload-bytes",
            type=int,
            default=Limits.max_payload_bytes,
            help="Largest event payload a client may send (%(default)s)",
        )
        group.add_argument(
            "--max-connections",
            type=int,
            default=Limits.max_connections,
            help="Connections served at once; more are refused (%(default)s)",
        )
        group.add_argument(
            "--max-connections-per-client",
            type=int,
            default=Limits.max_connections_per_client,
            help="Connections one address may hold at once (%(default)s)",
        )
        group.add_argument(
            "--idle-timeout",
            type=float,
            default=idle_timeout_s,
            help="Seconds without a request (pings do not count) before a "
            "connection is closed; 0 never (%(default)s)",
        )
        group.add_argument(
            "--state-dir",
            type=Path,
            help="Where the stack id and the house pushed to it are kept "
            "($XDG_STATE_HOME/wyoming-rtvoice, else ~/.local/state/wyoming-rtvoice)",
        )
        group.add_argument(
            "--stack-id",
            help="This installation's id (default: a random id kept in --state-dir)",
        )
        group = parser.add_argument_group("logging")
        group.add_argument(
            "--debug",
            action="store_true",
            help="Log DEBUG messages, which include what users said and full LLM "
            "requests (transcripts, conversation history); INFO logs neither",
        )
        group.add_argument(
            "--log-format", default=logging.BASIC_FORMAT, help="Format for log messages"
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServerConfig:
        return cls(
            uri=getattr(args, "uri", ""),
            zeroconf=args.zeroconf,
            http_uri=args.http_uri,
            http_token_file=args.http_token_file,
            allow_peer=tuple(args.allow_peer),
            limits=Limits(
                max_payload_bytes=args.max_payload_bytes,
                max_connections=args.max_connections,
                max_connections_per_client=args.max_connections_per_client,
                idle_timeout_s=args.idle_timeout,
            ),
            state_dir=args.state_dir or default_state_dir(),
            stack_id=args.stack_id,
            debug=args.debug,
            log_format=args.log_format,
        )

    def http_token(self) -> str | None:
        """The HTTP API's bearer token; empty is none (it would let anyone in)."""
        return read_token(self.http_token_file, HTTP_TOKEN_ENV)


def setup_logging(config: ServerConfig) -> None:
    logging.basicConfig(
        level=logging.DEBUG if config.debug else logging.INFO,
        format=config.log_format,
    )


def stack_id(config: ServerConfig) -> str:
    """--stack-id, else a random id made once and kept in the state directory
    (not the MAC address, which adverts would broadcast)."""
    if config.stack_id:
        return config.stack_id
    path = config.state_dir / "id"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    new_id = secrets.token_hex(8)
    try:
        write_atomically(path, new_id + "\n")
    except OSError as err:
        raise SystemExit(f"--state-dir {config.state_dir}: {err}") from err
    return new_id


def write_atomically(path: Path, text: str) -> None:
    """Write a file readable by its owner only, so that a crash leaves the
    old one or the new one, whole. The partial file is made new (a link
    planted in its place is removed, never followed)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        fd = os.open(partial, flags, 0o600)
    except FileExistsError:  # left by a crash, or planted
        partial.unlink()
        fd = os.open(partial, flags, 0o600)
    with open(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
