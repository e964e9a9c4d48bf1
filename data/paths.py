"""Where keyface finds data and models: a path given by the caller first, then an environment variable."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

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


GALLERY_ENV = "KEYFACE_GALLERY"  # the gallery used where --gallery is not given: a file or a postgresql:// URI
DATABASE_SCHEMES = ("postgresql://", "postgres://")


def default_gallery() -> Path:
    """The per-user gallery file, used where no gallery is named."""
    return user_dir("galleries") / "gallery.db"


def is_database_uri(location) -> bool:
    """Whether a gallery location names a PostgreSQL database rather than a file."""
    return isinstance(location, str) and location.strip().lower().startswith(DATABASE_SCHEMES)


def shown_location(location) -> str:
    """A gallery location fit for messages and logs: a database URI with its passwords replaced by ***."""
    text = str(location).strip()
    return masked(text, text)


def masked(text: str, location) -> str:
    """`text` (a message, or the location itself) with the passwords a database location holds replaced by
    ***: in its user part (up to its last @, whatever the password holds), as password= in its query, and,
    where they are 3 characters or more, wherever else they appear (a driver's message may quote them)."""
    uri = str(location).strip()
    if not is_database_uri(uri):
        return text
    scheme, rest = uri.split("://", 1)
    user, at, after = rest.rpartition("@")
    secrets = [user.split(":", 1)[1]] if at and ":" in user else []
    if secrets:
        text = text.replace(uri, f"{scheme}://{user.split(':', 1)[0]}:***@{after}")
    secrets += re.findall(r"(?:^|[?&])(?:ssl)?password=([^&#\s\"']*)", rest, re.IGNORECASE)
    text = re.sub(r"((?:^|[?&\s])(?:ssl)?password=)[^&#\s\"']*", r"\1***", text, flags=re.IGNORECASE)
    for secret in sorted({s for found in secrets for s in (found, unquote(found)) if len(s) >= 3}, key=len,
                         reverse=True):
        text = text.replace(secret, "***")
    return text


def gallery_location(given: str | None = None) -> Path | str:
    """The gallery named: `given` (a file or a postgresql:// URI), else $KEYFACE_GALLERY, else the per-user file."""
    given = given if given is not None else os.environ.get(GALLERY_ENV)
    if given is None:
        return default_gallery()
    if not given.strip():
        raise DataError("the gallery named is empty: give a gallery file or a postgresql:// URI")
    return given.strip() if is_database_uri(given) else Path(given)


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
