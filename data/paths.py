"""Where keyface finds data and models: a path given by the caller first, then an environment variable."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

from keyface.data.errors import DataError, GalleryError, NoDataRootError

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


OTHER_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]+)://")  # another program's address: sqlite://, mysql://, ...
LIBPQ_WORDS = re.compile(r"\s*(host|hostaddr|port|dbname|user|password|service|sslmode)\s*=", re.I)


def checked_address(location: str) -> str:
    """A gallery location given as text, refused where it is an address keyface does not take, before it could
    become a file's name with a password in it: another scheme (postgresql+psycopg://) or libpq's key=value."""
    other = OTHER_SCHEME.match(location)
    if other and not is_database_uri(location):
        raise GalleryError(f"a gallery is a file or a postgresql:// URI, not a {other.group(1)}:// address")
    if LIBPQ_WORDS.match(location):
        raise GalleryError("a gallery is a file or a postgresql:// URI: write libpq's key=value settings as "
                           "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    return location


def shown_location(location) -> str:
    """A gallery location fit for messages and logs: a database URI with its passwords replaced by ***."""
    text = str(location).strip()
    return _uri_masked(text)[0] if is_database_uri(text) else text


def masked(text: str, location) -> str:
    """`text` (a driver's message, say) with the passwords a database location holds replaced by ***: the
    URI itself where it is quoted, and elsewhere each password (and each part of one, where libpq would split
    it at an unencoded @) 3 characters or more, outside the masked URI."""
    uri = str(location).strip()
    if not is_database_uri(uri):
        return text
    shown, secrets = _uri_masked(uri)
    parts = text.replace(uri, shown).split(shown)
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        parts = [part.replace(secret, "***") for part in parts]
    return shown.join(parts)


def uris_masked(text: str) -> str:
    """Free text (a command line echoed back, say) with each database URI in it shown as shown_location shows it,
    and the password of any other address (a mistyped scheme, libpq's password=...) as ***."""
    text = re.sub(r"(?i)postgres(ql)?://\S+", lambda found: shown_location(found.group(0)), text)
    text = re.sub(r"([A-Za-z][\w+.-]*://[^:/@\s]*:)(?!\*\*\*@)[^@\s]*@", r"\1***@", text)
    return re.sub(r"(?i)(password\s*=\s*)(?!\*\*\*)[^\s&]+", r"\1***", text)


def _uri_masked(uri: str) -> tuple[str, list[str]]:
    """A database URI with its passwords replaced by ***, and the passwords (as written and decoded). Where an
    unencoded @ makes the user part ambiguous, the longest reading is masked: up to the last @ before the
    first / after the first @ (a password may hold ? # / @; a query value may hold @)."""
    scheme, rest = uri.split("://", 1)
    secrets, first_at = [], rest.find("@")
    if first_at >= 0:
        slash = rest.find("/", first_at)
        user_end = rest.rfind("@", 0, len(rest) if slash < 0 else slash)
        user, after = rest[:user_end], rest[user_end + 1:]
        if ":" in user and "/" not in user.split(":", 1)[0]:
            name, password = user.split(":", 1)
            secrets += [password, *password.split("@")]
            rest = f"{name}:***@{after}"
    path, mark, query = rest.partition("?")
    fields = []
    for field in query.split("&") if mark else []:
        key, equals, value = field.partition("=")
        if equals and unquote(key).strip().lower() in ("password", "sslpassword"):
            secrets.append(value)
            field = f"{key}=***"
        fields.append(field)
    shown = f"{scheme}://{path}" + ("?" + "&".join(fields) if mark else "")
    return shown, [t for s in secrets for t in (s, unquote(s))]


def gallery_location(given: str | None = None) -> Path | str:
    """The gallery named: `given` (a file or a postgresql:// URI), else $KEYFACE_GALLERY, else the per-user file."""
    given = given if given is not None else os.environ.get(GALLERY_ENV)
    if given is None:
        return default_gallery()
    if not given.strip():
        raise DataError("the gallery named is empty: give a gallery file or a postgresql:// URI")
    return given.strip() if is_database_uri(checked_address(given)) else Path(given)


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
