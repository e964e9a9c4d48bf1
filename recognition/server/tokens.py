"""The server's API token: made once, kept in a file only its owner can read."""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from keyface.data.errors import KeyfaceError
from keyface.data.files import create_private


def load_or_create_token(path: Path) -> str:
    """The token in `path`, made (owner-only) if the file does not exist; refused if others can read it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_private(path, (secrets.token_urlsafe(32) + "\n").encode())
    try:
        mode = path.stat().st_mode
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyfaceError(f"cannot read the token file {path}: {getattr(exc, 'strerror', exc)}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and os.name == "posix":
        raise KeyfaceError(f"{path} can be read by others: make it owner-only (chmod 600) or use another file")
    if len(token) < 16 or not token.isprintable() or " " in token:
        raise KeyfaceError(f"{path} does not hold a usable token (16 printable characters at least, no spaces)")
    return token
