"""`keyface people | rename | remove | train-head | reindex | check | migrate`: looking after a gallery, a file
or a PostgreSQL database."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from keyface.data.errors import KeyfaceError
from keyface.data.paths import gallery_location, shown_location
from keyface.recognition.cli import commands
from keyface.recognition.cli.commands import report_errors, existing_gallery, open_gallery, recogniser
from keyface.recognition.facade import check_name

MIGRATE_EPILOG = ("SRC and DST are gallery files or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB URIs. DST must be "
                  "new or empty; everything is copied in one transaction, then both are read back and compared "
                  "(people, photo hashes, vectors bit for bit, thumbnails). SRC is only read.")


def register(sub) -> None:
    """Add the gallery-keeping commands."""
    gallery, with_recogniser = [commands.GALLERY], [commands.GALLERY, commands.RECOGNISER]
    p = sub.add_parser("people", help="list the gallery's people and photo counts", parents=gallery)
    p.add_argument("--json", action="store_true", help="a JSON list of {name, photos}")
    p.set_defaults(func=cmd_people)
    p = sub.add_parser("rename", help="rename a person", parents=gallery)
    p.add_argument("old", help="the person's name now")
    p.add_argument("new", help="the new name")
    p.set_defaults(func=cmd_rename)
    p = sub.add_parser("remove", help="remove a person and their photos", parents=gallery)
    p.add_argument("name", help="the person to remove")
    p.set_defaults(func=cmd_remove)
    p = sub.add_parser("train-head", help="retrain a softmax head on the gallery (identify --head uses it)",
                       parents=[commands.GALLERY, commands.EMBEDDER, commands.PRECISION])  # finds no faces
    p.add_argument("--epochs", type=commands.count, default=200, help="training epochs (default: 200)")
    p.set_defaults(func=cmd_train_head)
    p = sub.add_parser("reindex", help="re-embed a gallery's photos with another embedder (a file's old copy is "
                       "kept as GALLERY.bak, earlier ones as GALLERY.bak.1, .2, ..., the oldest last; a database is replaced in "
                       "one transaction)", parents=with_recogniser)
    p.add_argument("--skip-missing", action="store_true", help="leave out a photo whose file is gone or changed "
                   "since it was enrolled (default: refuse, changing nothing)")
    p.set_defaults(func=cmd_reindex)
    p = sub.add_parser("check", help="check a gallery: the file's or database's structure and every stored embedding",
                       parents=gallery)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("migrate", help="copy a gallery between a file and PostgreSQL (either way), checked",
                       epilog=MIGRATE_EPILOG)
    p.add_argument("source", metavar="SRC", help="the gallery to copy (only read)")
    p.add_argument("target", metavar="DST", help="a new gallery to copy into, or an empty one of the same embedder")
    p.set_defaults(func=cmd_migrate)


def cmd_people(args) -> int:
    """List people and photo counts."""
    with open_gallery(args) as gallery:
        people = list(gallery.people().items())
    if args.json:
        print(json.dumps([{"name": n, "photos": c} for n, c in people], indent=2))
    else:
        for name, count in people:
            print(f"{name}\t{count}")
        print(f"{len(people)} people, {sum(c for _, c in people)} photos")
    return 0


def cmd_rename(args) -> int:
    """Rename a person."""
    with open_gallery(args) as gallery:
        gallery.rename(args.old, args.new)
    print(f"renamed {check_name(args.old, existing=True)!r} to {check_name(args.new)!r}")  # as stored: stripped, NFC
    return 0


def cmd_remove(args) -> int:
    """Remove a person."""
    with open_gallery(args) as gallery:
        n = gallery.remove(args.name)
    print(f"removed {args.name!r} and {n} photo(s)")
    return 0


def cmd_train_head(args) -> int:
    """Fit the softmax head on the gallery's embeddings."""
    # trained on the stored embeddings: no model loads, unless to check that --embedder is the gallery's
    with open_gallery(args, models=args.embedder is not None) as gallery:
        path = gallery.train_head(args.epochs)
        print(f"softmax head over {len(gallery.people())} people written to {path}")
    return 0


def cmd_reindex(args) -> int:
    """Re-embed a gallery with another embedder: a file is rebuilt aside, checked and copied into place with
    a backup (core.gallery_check.rewrite); a database is rebuilt in a scratch file and then replaced in one
    transaction (readers see the old gallery or the new, never a mix)."""
    from keyface.recognition.core.gallery_check import rewrite
    from keyface.recognition.upkeep import reindex, replace_gallery
    from keyface.recognition.facade import made_by
    path = existing_gallery(args)
    rec = recogniser(args, made_by(path))  # without --embedder: its own (a newer model file, another precision)
    if isinstance(path, Path):
        added, errors, left_out = rewrite(path, lambda old, scratch: reindex(old, rec, scratch, args.skip_missing),
                                          replaces_vectors=True)
        print(f"reindexed {added} photo(s) with {rec.embedder.name} (model {rec.embedder.version}){_left(left_out)}; "
              f"the old gallery is {path.name}.bak")
        return report_errors(errors)
    with tempfile.TemporaryDirectory(prefix="keyface-reindex-") as scratch:
        added, errors, left_out = reindex(path, rec, Path(scratch) / "gallery.db", args.skip_missing)
        if errors:  # a database is only replaced by a complete re-embedding
            return report_errors(errors + ["nothing was changed in the database"])
        replace_gallery(path, Path(scratch) / "gallery.db")
    print(f"reindexed {added} photo(s) with {rec.embedder.name} (model {rec.embedder.version}){_left(left_out)}")
    return 0


def _left(left_out: list[str]) -> str:
    """What a reindex says of the photos it left out (each was logged as it was)."""
    return f", left out {len(left_out)} whose file is gone or changed" if left_out else ""


def cmd_check(args) -> int:
    """Check a gallery: its structure and every stored vector; exit 1 if anything is wrong."""
    from keyface.recognition.upkeep import check_gallery
    path = existing_gallery(args)  # a missing file or a folder: said as everywhere else, with the enrol command
    shown = str(shown_location(path))
    problems = check_gallery(path)
    for problem in problems:
        print(f"{shown}: {problem}")
    print(f"{shown}: {'damaged' if problems else 'ok'}")
    return 1 if problems else 0


def cmd_migrate(args) -> int:
    """Copy a gallery into a new or empty one, then compare the two."""
    from keyface.recognition.upkeep import migrate
    source, target = (_location(args.source, "SRC"), _location(args.target, "DST"))
    counts = migrate(source, target)
    print(f"copied {counts.people} people, {counts.photos} photos, {counts.embeddings} embeddings and "
          f"{counts.thumbnails} thumbnails from {shown_location(source)} to {shown_location(target)}; both read back equal")
    return 0


def _location(text: str, what: str):
    """A gallery location from the command line: a URI as given, else a file path."""
    if not text.strip():
        raise KeyfaceError(f"{what} is empty: give a gallery file or a postgresql:// URI")
    return gallery_location(text)
