"""`keyface serve`: the HTTP API and browser page (keyface.recognition.server), models loaded once."""
from __future__ import annotations

import errno
import logging
import socket
import sys
from pathlib import Path

from keyface.data.errors import KeyfaceError
from keyface.data.paths import shown_location, user_dir
from keyface.recognition.approaches.registry import DEFAULT_EMBEDDER, EMBEDDER_NAMES
from keyface.recognition.cli import commands

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def register(sub) -> None:
    """Add `keyface serve`."""
    p = sub.add_parser("serve", help="an HTTP API and a browser page for enrolling and identifying",
                       description="Serve the gallery over HTTP: a JSON API under /api (OpenAPI at /api/docs) and a "
                       "page at /. Requests that change the gallery need the API token (Authorization: Bearer "
                       "TOKEN); bound beyond loopback, every API request does. The token is made at first start.",
                       parents=[commands.DETECTOR, commands.PRECISION])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=commands.port, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--gallery", help="gallery file or postgresql:// URI (default: $KEYFACE_GALLERY, then the "
                   "per-user gallery.db; a new one is made by its first enrolment)")
    p.add_argument("--embedder", choices=EMBEDDER_NAMES,
                   help=f"embedder (default: the gallery's own; for a new gallery {DEFAULT_EMBEDDER})")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")
    p.add_argument("--token-file", help="file holding the API token (default: the per-user serve/token; made "
                   "owner-only if missing)")
    p.add_argument("--max-upload-mb", type=commands.count, default=20, help="largest request body in MB (default: 20)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser pages from this origin to call the API (repeatable; default: none)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    """Load the models, open the gallery, serve until interrupted."""
    from keyface.recognition.server.app import build_app
    from keyface.recognition.server.tokens import load_or_create_token
    args.host = args.host.strip().removeprefix("[").removesuffix("]")  # [::1], as in an address, is ::1
    token_file = Path(args.token_file) if args.token_file else user_dir("serve") / "token"
    token = load_or_create_token(token_file)
    gallery = commands.gallery_path(args)
    app = build_app(args.embedder, args.detector, args.models, gallery, token, args.host not in LOOPBACK,
                    args.max_upload_mb * 1_000_000, tuple(args.cors_origin), args.precision, args.min_face)
    served = app.state.store.gallery
    embedder = f"{served.embedder} ({served.precision})"
    import uvicorn
    listening = _bound(args.host, args.port)  # before saying where: a port in use is said, not announced
    # every address of this machine: open it at one a browser can reach (here, loopback)
    everywhere = args.host in ("0.0.0.0", "::")
    shown_host = "127.0.0.1" if everywhere else f"[{args.host}]" if ":" in args.host else args.host
    print(f"keyface serving {shown_location(gallery)} with {embedder} at http://{shown_host}:{args.port}/#token={token}"
          + (" (and at this machine's other addresses)" if everywhere else "") + "\n"
          f"API token in {token_file}; stop with Ctrl-C", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[listening])
    return 0


def _bound(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or one line saying why there cannot be one."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        # "::" is every address, IPv4 too, as uvicorn's own bind made it (create_server's default is IPv6 only)
        both = host == "::" and socket.has_dualstack_ipv6()
        return socket.create_server((host, port), family=family, backlog=2048, dualstack_ipv6=both)
    except OSError as exc:
        why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror or "not an address here"
        raise KeyfaceError(f"cannot serve on {host}:{port} ({why})") from None
