"""Where keyface finds data and models: a path given by the caller first, then an environment variable."""
from __future__ import annotations

import os
from pathlib import Path

from keyface.data.errors import DataError, NoDataRootError

DATA_ENV = "KEYFACE_DATA"
MODELS_ENV = "KEYFACE_MODELS"


def data_root(flag: str | os.PathLike | None = None) -> Path:
    """Return the data root: the flag if given, else $KEYFACE_DATA; error if neither exists."""
    value = flag if flag else os.environ.get(DATA_ENV)
    if not value:
        raise NoDataRootError(f"no data root: set {DATA_ENV} or pass the data root")
    root = Path(value).expanduser()
    if not root.is_dir():
        raise DataError(f"data root {root} is not a directory")
    return root


def user_dir(kind: str) -> Path:
    """Per-user keyface directory ('models', 'galleries', 'cache') under XDG_DATA_HOME."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "keyface" / kind


def default_gallery() -> Path:
    """The per-user gallery file, used where no gallery is named."""
    return user_dir("galleries") / "gallery.db"


def models_dir(flag: str | os.PathLike | None = None) -> Path:
    """Return the models directory: the flag, then $KEYFACE_MODELS, then the per-user default."""
    value = flag if flag else os.environ.get(MODELS_ENV)
    return Path(value).expanduser() if value else user_dir("models")


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return path as a Path if it is an existing file, else raise DataError naming it."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} not found: {p}")
    return p
