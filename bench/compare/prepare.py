"""Installing what the benchmark needs, idempotently: whatever is already there is left alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

LITELLM_VERSION = "1.80.0"
# Debian package -> the program it brings.
DEBIAN = {"nginx": "nginx", "wrk": "wrk"}


def log(message: str) -> None:
    print(f"[prepare] {message}", file=sys.stderr, flush=True)


def _which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin:/usr/bin")


def debian_tools() -> dict[str, str]:
    """nginx and wrk from Debian's packages (apt-get, as root)."""
    missing = [package for package, program in DEBIAN.items() if _which(program) is None]
    if missing:
        if os.geteuid() != 0:
            raise SystemExit(f"missing {missing}: run `apt-get install -y {' '.join(missing)}` as root")
        log(f"apt-get install {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)
    found = {program: _which(program) for program in DEBIAN.values()}
    if None in found.values():
        raise SystemExit(f"could not find {found} after installing")
    return found  # type: ignore[return-value]


def py_spy() -> str:
    """py-spy into the environment running the benchmark (pip)."""
    here = Path(sys.executable).parent / "py-spy"
    if here.exists():
        return str(here)
    log("pip install py-spy")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return str(here)


def litellm(cache: Path) -> Path | None:
    """LiteLLM's proxy in a virtual environment of its own; None (and why, on stderr) if it fails."""
    venv = cache / "litellm-venv"
    program = venv / "bin" / "litellm"
    marker = venv / f".litellm-{LITELLM_VERSION}"
    if program.exists() and marker.exists():
        return program
    log(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} (a few minutes, once)")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        log(f"LiteLLM could not be installed ({exc}):\n{(exc.stderr or '')[-3000:]}")
        return None
    marker.touch()
    return program
