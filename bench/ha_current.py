"""The current Home Assistant's test environment, `.venv-ha-current/`.

Home Assistant 2026.x needs Python >= 3.14.2. The venv (`venv/`) is made with
that Python from wherever the machine has one: `PYTHON_HA_CURRENT`, else
`python3.14` on PATH; where it has none, from Debian's packages in a root of
Debian "forky" made with debootstrap (`root/`). Commands then run in that
root, in a mount namespace of their own (`unshare`; the mounts go with the
process): the checkout, the project's `.venv` and its base Python are bound
in at the same paths, so the tests start the project's servers as they do
anywhere else. The network is the host's; the tests use loopback only.

    python -m bench.ha_current setup         make or update it (script/setup)
    python -m bench.ha_current run ARGV...   run ARGV in it, in this folder
    script/ha-current ARGV...                the same, from anywhere
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.debian import HOST_CA, debian_mirrors

REPO = Path(__file__).resolve().parents[1]
HOME = REPO / ".venv-ha-current"
ROOT = HOME / "root"
VENV = HOME / "venv"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = REPO / "tests_ha" / "requirements-current.txt"
INSTALLED = VENV / "installed-requirements.txt"
MINIMUM = (3, 14, 2)
SUITE = "forky"
# Python, and g++ with the headers for the two sdists Home Assistant pins
# that have no cp314 wheels (pymicro-vad, pyspeex-noise).
PACKAGES = ("python3.14", "python3.14-venv", "python3.14-dev", "g++", "ca-certificates")
RECIPE = ROOT / "etc" / "rtvoice-recipe"  # the packages the root was made with
ROOT_PYTHON = "/usr/bin/python3.14"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def version_of(python: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except OSError:
        return None
    return tuple(int(part) for part in out.split()) or None


def host_python() -> str | None:
    """A Python >= 3.14.2 of this machine's own, if it has one."""
    for python in (os.environ.get("PYTHON_HA_CURRENT"), shutil.which("python3.14")):
        if python and (version_of(python) or ()) >= MINIMUM:
            return python
    return None


def in_root() -> bool:
    return ROOT.is_dir()


def make_root() -> None:
    """Debian forky with Python 3.14 and g++ (~1 minute, ~0.7 GB)."""
    if RECIPE.is_file() and RECIPE.read_text(encoding="utf-8") == ",".join(PACKAGES):
        return
    if (
        os.geteuid() == 0
        and not shutil.which("debootstrap")
        and shutil.which("apt-get")
    ):
        step("Installing debootstrap (apt-get)")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            [
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "debootstrap",
            ],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        sys.exit(
            "No Python >= 3.14.2 here (set PYTHON_HA_CURRENT), and making one "
            "from Debian's packages needs root and debootstrap"
        )
    archive, _ = debian_mirrors()
    partial = HOME / "root.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(ROOT, ignore_errors=True)
    step(f"Debian {SUITE} with {', '.join(PACKAGES)} from {archive} (debootstrap)")
    # Bookworm's debootstrap has no script named forky; sid's makes it.
    scripts = Path("/usr/share/debootstrap/scripts")
    script = scripts / SUITE if (scripts / SUITE).exists() else scripts / "sid"
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}"]
        + [SUITE, str(partial), archive, str(script)],
        check=True,
    )
    shutil.rmtree(partial / "var/cache/apt/archives", ignore_errors=True)
    (partial / RECIPE.relative_to(ROOT)).write_text(
        ",".join(PACKAGES), encoding="utf-8"
    )
    partial.rename(ROOT)


def binds() -> list[Path]:
    """What the root needs of the host, bound at the same paths: the checkout,
    the project's .venv and its base Python (tests_ha start the servers with
    it), and this environment and .cache where they live elsewhere (a
    symlink)."""
    project_python = REPO / ".venv" / "bin" / "python"
    base = subprocess.run(
        [str(project_python), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if base == "/usr" or base.startswith("/usr/"):
        sys.exit(
            f".venv's Python lives in {base}, which the {SUITE} root has its "
            "own of: make .venv with a Python installed elsewhere (pyenv)"
        )
    paths: list[Path] = []
    shared = [(REPO / name).resolve() for name in (".venv", ".cache")]
    for path in (REPO, *shared, Path(base), HOME.resolve()):
        if not any(path.is_relative_to(kept) for kept in paths):
            paths.append(path)
    return paths


def run(argv: list[str]) -> None:
    """Exec argv in the environment, in the current folder."""
    if not in_root():
        os.execvp(argv[0], argv)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
        ),
    }
    os.execvpe(
        "unshare",
        ["unshare", "--mount", "--propagation", "private", "--"]
        + [sys.executable, "-m", "bench.ha_current", "enter", "--", *argv],
        env,
    )


def enter(argv: list[str]) -> None:
    """In a new mount namespace: mount what the root needs, chroot, exec."""
    root = ROOT.resolve()

    def mount(*args: str) -> None:
        subprocess.run(["mount", *args], check=True)

    mount("-t", "proc", "proc", str(root / "proc"))
    for tree in ("dev", "sys"):
        mount("--rbind", f"/{tree}", str(root / tree))
    for path in [Path("/etc/resolv.conf"), HOST_CA, *binds()]:
        if not path.exists():
            continue
        target = root / path.relative_to("/")
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        mount("--bind", str(path), str(target))
    cwd = os.getcwd()
    os.chroot(root)
    os.chdir(cwd)
    os.execvpe(argv[0], argv, {**os.environ, "PATH": PATH})


def setup() -> None:
    """Make or update .venv-ha-current; skipped while it holds what
    tests_ha/requirements-current.txt names."""
    requirements = REQUIREMENTS.read_text(encoding="utf-8")
    if INSTALLED.is_file() and INSTALLED.read_text(encoding="utf-8") == requirements:
        step(f".venv-ha-current is up to date with {REQUIREMENTS.relative_to(REPO)}")
        return
    started = time.monotonic()
    python = ROOT_PYTHON if in_root() else host_python()
    if python is None:
        make_root()
        python = ROOT_PYTHON
    launcher = [sys.executable, "-m", "bench.ha_current", "run", "--"]
    if not PYTHON.exists():
        step(f"Creating .venv-ha-current/venv with {python}")
        subprocess.run(
            [*launcher, python, "-m", "venv", str(VENV)], check=True, cwd=REPO
        )
    step(
        "Installing Home Assistant 2026.10.4 and its test harness into "
        ".venv-ha-current (about 1 GB; pymicro-vad and pyspeex-noise build "
        "from source: a few minutes)"
    )
    pip = [*launcher, str(PYTHON), "-m", "pip", "--no-cache-dir"]
    subprocess.run(
        [*pip, "install", "--quiet", "--upgrade", "pip"], check=True, cwd=REPO
    )
    subprocess.run(
        [*pip, "install", "--requirement", str(REQUIREMENTS)], check=True, cwd=REPO
    )
    INSTALLED.write_text(requirements, encoding="utf-8")
    size = subprocess.run(
        ["du", "-sh", str(HOME)], capture_output=True, text=True
    ).stdout.split()[0]
    step(
        f".venv-ha-current made in {time.monotonic() - started:.0f} s, "
        f"{size} on disk"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("setup", "run", "enter"))
    parser.add_argument("argv", nargs="*")
    args = parser.parse_args()
    if args.command == "setup":
        setup()
    elif args.command == "run":
        run(args.argv)
    else:
        enter(args.argv)


if __name__ == "__main__":
    main()
