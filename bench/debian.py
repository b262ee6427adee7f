"""Debian roots made with debootstrap (script/docker-test's stand-in base,
the current Home Assistant's test environment): where this host's apt
sources point."""

from __future__ import annotations

import re
from pathlib import Path

# This host's CA bundle, handed to pip in a root (a proxy's CA may be in it).
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def debian_mirrors() -> tuple[str, str]:
    """(archive, security) URIs as this host's apt sources name them."""
    found: dict[str, str] = {}
    sources = Path("/etc/apt")
    for path in [sources / "sources.list", *sorted(sources.glob("sources.list.d/*"))]:
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        for block in re.split(r"\n\s*\n", text):  # deb822: URIs and Suites
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            suites = re.search(r"^Suites:(.*)$", block, re.M)
            if uris and suites:
                for suite in suites.group(1).split():
                    found.setdefault(suite, uris.group(1))
        for uri, suite in re.findall(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M
        ):
            found.setdefault(suite, uri)
    return (
        found.get("bookworm", "http://deb.debian.org/debian"),
        found.get("bookworm-security", "http://deb.debian.org/debian-security"),
    )
