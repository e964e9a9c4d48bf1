"""Who made an artefact (a model file, a benchmark's report): the command, keyface's version, the git revision
and the time, written into what it made so a figure can be traced to the code behind it."""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path


def git_revision() -> str:
    """The current git commit of the keyface checkout (with '+dirty' if modified), or 'unknown'."""
    here = Path(__file__).resolve().parent
    if not (here.parent / "setup.cfg").is_file():  # an installed copy: the git around it is not keyface's
        return "unknown"
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def keyface_version() -> str:
    """The installed keyface distribution's version ('unknown' when run from a bare checkout)."""
    try:
        return importlib.metadata.version("keyface")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def provenance() -> dict:
    """Who made an artefact: command line, keyface version, git revision, UTC time."""
    return {"command": " ".join(["keyface", *sys.argv[1:]]) if sys.argv else "", "keyface_version": keyface_version(),
            "git_revision": git_revision(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
