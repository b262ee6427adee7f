"""The documentation: the README stays short and links every page, links
resolve, the configuration reference is what the parsers say, the figures
at the top of the README are measured ones, and the map of the package is
its imports."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
PACKAGE = REPO / "wyoming_rtvoice"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE = load_script(REPO / "script" / "config_reference.py")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(
        r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S
    )
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


def test_configuration_reference_is_generated_from_the_parsers() -> None:
    committed = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert committed == REFERENCE.render(), "docs/configuration.md: run script/docs"


def test_configuration_reference_has_every_flag_of_every_command() -> None:
    reference = (DOCS / "configuration.md").read_text(encoding="utf-8")
    commands = REFERENCE.subcommands(REFERENCE.build_parser())
    assert {"tts", "asr", "wake", "handle", "stack", "converse"} <= set(commands)
    for name, parser in commands.items():
        section = reference.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert f"`{option}`" in section, f"{name} {option}"


def test_readme_is_short_and_links_every_page() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 250
    linked = {target.split("#")[0] for target in LINK.findall(text)}
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in linked, f"README does not link {page.name}"


def test_every_relative_link_and_anchor_resolves() -> None:
    for page in pages():
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked), f"{page.name}: {target}"


def test_readme_top_figures_are_the_benchmarks_figures() -> None:
    text = README.read_text(encoding="utf-8")
    top = text[: text.index("## Quick start")]
    figures = re.findall(r"\d+\.\d+ / \d+\.\d+", top)
    assert len(figures) >= 6
    benchmarks = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    for figure in figures:
        assert figure in benchmarks, f"{figure} is not a measured figure"
    waterfall = (DOCS / "images" / "waterfall.svg").read_text(encoding="utf-8")
    for figure in re.findall(r"first audio at (\d+\.\d) ms", waterfall):
        assert figure in benchmarks, f"the waterfall's {figure} ms is not measured"


def floors() -> list[set[str]]:
    """The map in docs/development.md: each floor's names, the top first."""
    text = (DOCS / "development.md").read_text(encoding="utf-8")
    block = text.split("## The map", 1)[1].split("```", 2)[1]
    return [set(re.findall(r"\w+(?:\.py|/)", line)) for line in block.splitlines()]


def unit(parts: list[str]) -> str | None:
    """The map's name for a module of the package (`asr/` for asr.session);
    None for the package itself or what is no module (`__version__`)."""
    if not parts or parts == ["__init__"]:
        return None
    if (PACKAGE / parts[0]).is_dir():
        return parts[0] + "/"
    return parts[0] + ".py" if (PACKAGE / f"{parts[0]}.py").is_file() else None


def module_parts(path: Path) -> list[str]:
    return list(path.relative_to(PACKAGE).with_suffix("").parts)


def imports() -> set[tuple[str | None, str | None]]:
    """(importer, imported) for every import within the package, those in
    functions and under TYPE_CHECKING too."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = module_parts(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = parts[: len(parts) - node.level]
                names = [node.module] if node.module else [a.name for a in node.names]
                targets = [base + name.split(".") for name in names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module.split(".")[1:]]
                if not node.module.startswith(PACKAGE.name + "."):
                    continue
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
                targets = [
                    n.split(".")[1:] for n in names if n.startswith(PACKAGE.name + ".")
                ]
            else:
                continue
            found |= {(unit(parts), unit(target)) for target in targets}
    return found


def test_the_map_of_the_package_is_its_imports() -> None:
    floor = {name: place for place, names in enumerate(floors()) for name in names}
    modules = {unit(module_parts(path)) for path in PACKAGE.rglob("*.py")}
    assert modules - {None} == set(floor), "docs/development.md: the map is not whole"
    up = sorted(
        f"{importer} -> {imported}"
        for importer, imported in imports()
        if importer and imported and importer != imported
        if floor[importer] >= floor[imported]
    )
    assert not up, f"imports not down the map (docs/development.md): {up}"


def test_the_house_loads_no_protocol() -> None:
    """As docs/development.md says: importing the house loads no wyoming,
    aiohttp or LLM SDK."""
    code = "import sys, wyoming_rtvoice.house.store; print(*sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    assert "wyoming_rtvoice.house.matcher" in loaded
    assert not [m for m in loaded if m.startswith(("wyoming.", "aiohttp", "anthropic"))]
