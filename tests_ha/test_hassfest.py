"""What Home Assistant's hassfest checks for a core integration, run on ours
(hassfest itself only checks core integrations): the manifest's schema, the
quality scale file against the rule list and the rules' own checks,
translations against strings.json, icons, PARALLEL_UPDATES on every platform,
brand images, and the documentation the docs rules ask for.

Run as a script it rewrites translations/en.json from strings.json.
"""

from __future__ import annotations

import ast
import json
import re
import struct
import sys
from pathlib import Path
from typing import Any

import homeassistant
import voluptuous as vol
import yaml
from awesomeversion import (
    AwesomeVersion,
    AwesomeVersionException,
    AwesomeVersionStrategy,
)
from homeassistant.const import Platform
from homeassistant.const import __version__ as HA_VERSION

REPO = Path(__file__).resolve().parents[1]
INTEGRATION = REPO / "custom_components" / "rtvoice"
DOCS = REPO / "docs" / "home-assistant.md"
COMMON_STRINGS = Path(homeassistant.__file__).parent / "strings.json"
# en.json is made on the oldest Home Assistant the integration declares.
OLDEST = json.loads((REPO / "hacs.json").read_text(encoding="utf-8"))["homeassistant"]

# The rule names and tiers of Home Assistant's Integration Quality Scale, as
# data: from home-assistant/core script/hassfest/quality_scale.py (ALL_RULES,
# commit 008538e822535b1d6155c91f6642127afa184ed1).
TIERS = ("bronze", "silver", "gold", "platinum")
RULES = {
    "bronze": [
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ],
    "silver": [
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ],
    "gold": [
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ],
    "platinum": ["async-dependency", "inject-websession", "strict-typing"],
}
ALL_RULES = [rule for tier in TIERS for rule in RULES[tier]]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = load_json(INTEGRATION / "manifest.json")
    return data


def module(name: str) -> ast.Module:
    return ast.parse((INTEGRATION / f"{name}.py").read_text(encoding="utf-8"))


def functions(tree: ast.AST) -> set[str]:
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def string_arguments(tree: ast.AST, keyword: str) -> set[str]:
    """Every literal passed as `keyword=` anywhere in the module."""
    return {
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword)
        and node.arg == keyword
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


# --- manifest.json -------------------------------------------------------------


def _version(value: str) -> str:
    strategies = [
        AwesomeVersionStrategy.CALVER,
        AwesomeVersionStrategy.SEMVER,
        AwesomeVersionStrategy.SIMPLEVER,
        AwesomeVersionStrategy.BUILDVER,
        AwesomeVersionStrategy.PEP440,
    ]
    try:
        AwesomeVersion(value, ensure_strategy=strategies)
    except AwesomeVersionException as err:
        raise vol.Invalid(f"{value!r} is not a valid version") from err
    return value


def _https(value: str) -> str:
    if not value.startswith("https://"):
        raise vol.Invalid("not https")
    return value


# hassfest's CUSTOM_INTEGRATION_MANIFEST_SCHEMA, for the keys an integration
# like ours can use (script/hassfest/manifest.py).
MANIFEST_SCHEMA = vol.Schema(
    {
        vol.Required("domain"): str,
        vol.Required("name"): str,
        vol.Optional("integration_type"): vol.In(
            ["device", "entity", "hardware", "helper", "hub", "service", "system"]
        ),
        vol.Optional("config_flow"): bool,
        vol.Optional("zeroconf"): [str],
        vol.Required("documentation"): vol.All(vol.Url(), _https),
        vol.Optional("issue_tracker"): vol.Url(),
        vol.Optional("quality_scale"): vol.In(
            ["internal", "silver", "gold", "platinum"]
        ),
        vol.Optional("requirements"): [str],
        vol.Optional("dependencies"): [str],
        vol.Optional("after_dependencies"): [str],
        vol.Required("codeowners"): [vol.Match(r"^@[\w-]+(/[\w-]+)?$")],
        vol.Optional("loggers"): [str],
        vol.Required("iot_class"): vol.In(
            [
                "assumed_state",
                "calculated",
                "cloud_polling",
                "cloud_push",
                "local_polling",
                "local_push",
            ]
        ),
        vol.Optional("single_config_entry"): bool,
        vol.Required("version"): vol.All(str, _version),
    }
)


def test_manifest_follows_hassfest() -> None:
    data = manifest()
    MANIFEST_SCHEMA(data)
    assert data["domain"] == INTEGRATION.name
    keys = list(data)
    assert keys[:2] == ["domain", "name"] and keys[2:] == sorted(keys[2:])
    assert data["iot_class"] == "local_polling"  # it polls /api/info and /api/stats
    # A gold integration has an owner and diagnostics (hassfest's manifest rule).
    assert data["codeowners"] and (INTEGRATION / "diagnostics.py").exists()
    assert data["zeroconf"] == ["_rtvoice._tcp.local."]


def test_manifest_schema_rejects_what_hassfest_would() -> None:
    for change in (
        {"iot_class": "local_pull"},
        {"codeowners": ["nobody"]},
        {"version": "one"},
        {"documentation": "http://example.com"},
        {"quality_scale": "bronze"},
    ):
        try:
            MANIFEST_SCHEMA({**manifest(), **change})
        except vol.Invalid:
            continue
        raise AssertionError(f"accepted {change}")


# --- quality_scale.yaml --------------------------------------------------------

QUALITY_SCALE_SCHEMA = vol.Schema(
    {
        vol.Required("rules"): vol.Schema(
            {
                vol.Optional(rule): vol.Any(
                    vol.In(["todo", "done"]),
                    {vol.Required("status"): vol.In(["todo", "done"]), "comment": str},
                    {vol.Required("status"): "exempt", vol.Required("comment"): str},
                )
                for rule in ALL_RULES
            }
        )
    }
)


def quality_scale() -> dict[str, str]:
    """Each rule's status."""
    data = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())
    QUALITY_SCALE_SCHEMA(data)
    return {
        rule: value["status"] if isinstance(value, dict) else value
        for rule, value in data["rules"].items()
    }


def test_quality_scale_meets_the_declared_tier() -> None:
    statuses = quality_scale()
    tier = TIERS.index(manifest()["quality_scale"])
    required = [rule for t in TIERS[: tier + 1] for rule in RULES[t]]
    missing = [
        rule for rule in required if statuses.get(rule) not in ("done", "exempt")
    ]
    assert not missing, f"{manifest()['quality_scale']} needs: {missing}"
    assert set(statuses) == set(ALL_RULES)  # every rule has a decision


def test_quality_scale_schema_rejects_what_hassfest_would() -> None:
    for rules in (
        {"no-such-rule": "done"},
        {"brands": "exempt"},  # exempt needs a reason
        {"brands": {"status": "exempt"}},
        {"brands": "maybe"},
    ):
        try:
            QUALITY_SCALE_SCHEMA({"rules": rules})
        except vol.Invalid:
            continue
        raise AssertionError(f"accepted {rules}")


def done(rule: str) -> bool:
    return quality_scale()[rule] == "done"


def test_rules_marked_done_pass_hassfests_checks() -> None:
    """script/hassfest/quality_scale_validation, for the rules that have one."""
    init, flow = module("__init__"), module("config_flow")
    flow_steps = functions(flow)
    data = manifest()
    if done("config-flow"):
        assert data["config_flow"] and "async_step_user" in flow_steps
    if done("discovery"):
        assert "zeroconf" in data or {"async_step_hassio"} & flow_steps
        assert {"async_step_zeroconf", "async_step_hassio"} <= flow_steps
    if done("reconfiguration-flow"):
        assert "async_step_reconfigure" in flow_steps
    if done("reauthentication-flow"):
        assert "async_step_reauth" in flow_steps
    if done("unique-config-entry"):
        source = ast.unparse(flow)
        assert "async_set_unique_id" in source
        assert "_abort_if_unique_id_configured" in source
    if done("runtime-data"):
        assert "entry.runtime_data =" in ast.unparse(init)
    if done("test-before-setup"):
        assert "async_config_entry_first_refresh" in ast.unparse(init)
    if done("config-entry-unloading"):
        assert "async_unload_entry" in functions(init)
    if done("diagnostics"):
        assert "async_get_config_entry_diagnostics" in functions(module("diagnostics"))
    if done("strict-typing"):
        lint = (REPO / "script" / "lint").read_text()
        assert re.search(r"mypy .*--strict.* custom_components/rtvoice", lint)
    if done("integration-owner"):
        assert data["codeowners"]
    if done("inject-websession"):
        assert "async_get_clientsession" in ast.unparse(init)


def test_every_platform_sets_parallel_updates() -> None:
    platforms = [p.value for p in Platform if (INTEGRATION / f"{p.value}.py").exists()]
    assert {"conversation", "sensor", "stt"} <= set(platforms)
    for platform in platforms:
        assigned = {
            target.id
            for node in module(platform).body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        assert "PARALLEL_UPDATES" in assigned, f"{platform}.py"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_brand_images() -> None:
    """Home Assistant 2026.3+ serves a custom integration's brand/ folder; the
    sizes are the brands repository's rules."""
    brand = INTEGRATION / "brand"
    assert _png_size(brand / "icon.png") == (256, 256)
    assert _png_size(brand / "icon@2x.png") == (512, 512)
    width, height = _png_size(brand / "logo.png")
    assert 128 <= min(width, height) <= 256
    width, height = _png_size(brand / "logo@2x.png")
    assert 256 <= min(width, height) <= 512


# --- strings.json, translations, icons -------------------------------------------


def resolved(value: Any, common: dict[str, Any]) -> Any:
    """`[%key:common::...%]` references replaced by Home Assistant's text."""
    if isinstance(value, dict):
        return {key: resolved(item, common) for key, item in value.items()}
    match = re.fullmatch(r"\[%key:([\w:]+)%\]", value)
    if match is None:
        return value
    node: Any = common
    for part in match.group(1).split("::"):
        node = node[part]
    return resolved(node, common)


def english() -> Any:
    return resolved(load_json(INTEGRATION / "strings.json"), load_json(COMMON_STRINGS))


def common_masked(value: Any, strings: Any) -> Any:
    """`value` with the texts that `strings` takes from Home Assistant's
    common strings left out: their wording changes between releases (2026.x:
    "Reconfiguration was successful"), and en.json has the oldest's."""
    if isinstance(value, dict):
        return {key: common_masked(item, strings[key]) for key, item in value.items()}
    return "[common]" if re.fullmatch(r"\[%key:common::[\w:]+%\]", strings) else value


def test_translations_are_the_strings() -> None:
    translations = load_json(INTEGRATION / "translations" / "en.json")
    expected = english()
    if HA_VERSION != OLDEST:
        strings = load_json(INTEGRATION / "strings.json")
        translations = common_masked(translations, strings)
        expected = common_masked(expected, strings)
    assert translations == expected, (
        "translations/en.json is not strings.json: "
        "run `../.venv-ha/bin/python test_hassfest.py` in tests_ha"
    )


def test_strings_cover_what_the_code_uses() -> None:
    strings = load_json(INTEGRATION / "strings.json")
    assert set(strings) <= {"config", "entity", "exceptions", "issues", "options"}
    flow = module("config_flow")
    steps = string_arguments(flow, "step_id")
    reasons = string_arguments(flow, "reason")
    errors = {
        node.args[0].value
        for node in ast.walk(flow)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "CannotAdd"
        and isinstance(node.args[0], ast.Constant)
    }
    config = strings["config"]
    assert steps and steps == set(config["step"])
    # A CannotAdd is a form error, and an abort reason in the add-on's step.
    assert errors <= set(config["error"]) and errors <= set(config["abort"])
    assert reasons - {"already_configured"} <= set(config["abort"])
    assert "already_configured" in config["abort"]
    for step in config["step"].values():
        assert set(step.get("data_description", {})) <= set(step.get("data", {}))

    sources = [module(path.stem) for path in INTEGRATION.glob("*.py")]
    exceptions = set().union(
        *(string_arguments(tree, "translation_key") for tree in sources)
    ) - set(strings["entity"]["sensor"])
    assert exceptions and exceptions == set(strings["exceptions"])
    sensors = {"first_audio"} | {
        f"{stage}_{q}"
        for stage in ("asr", "intent", "llm", "tts")
        for q in ("p50", "p95")
    }
    assert set(strings["entity"]["sensor"]) == sensors


def test_icons_for_every_translated_entity() -> None:
    icons = load_json(INTEGRATION / "icons.json")
    strings = load_json(INTEGRATION / "strings.json")
    for platform, entities in strings["entity"].items():
        assert set(icons["entity"][platform]) == set(entities)
    for platform in icons["entity"].values():
        for icon in platform.values():
            assert re.fullmatch(r"mdi:[a-z0-9-]+", icon["default"])


# --- documentation (the docs-* rules) -----------------------------------------------


def test_documentation_has_what_the_docs_rules_ask() -> None:
    text = DOCS.read_text(encoding="utf-8")
    headings = "\n".join(re.findall(r"^#+ (.*)$", text, re.M)).lower()
    for heading in (
        "installation",
        "configuration parameters",
        "how data is updated",
        "examples and use cases",
        "known limitations",
        "troubleshooting",
        "removal",
        "supported",
    ):
        assert heading in headings, heading
    assert manifest()["documentation"].endswith("docs/home-assistant.md")


if __name__ == "__main__":
    target = INTEGRATION / "translations" / "en.json"
    target.write_text(json.dumps(english(), indent=2, ensure_ascii=False) + "\n")
    sys.exit(0)
