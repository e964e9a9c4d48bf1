"""`keyface enroll` (also `enrol`): people's photos and videos added to a gallery, by name or a folder per person."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from keyface.data.errors import GalleryUnavailableError, KeyfaceError
from keyface.recognition.cli.commands import (GALLERY, PHOTOS_HELP, RECOGNISER, count, open_gallery,
                                              report_errors)


def register(sub) -> None:
    """Add enroll."""
    p = sub.add_parser("enroll", aliases=["enrol"], help="add people's photos to the gallery (also: enrol)",
                       parents=[GALLERY, RECOGNISER])
    p.add_argument("photos", nargs="*", metavar="PHOTO", help=PHOTOS_HELP + " (with --name)")
    p.add_argument("--name", help="the person in the photos")
    p.add_argument("--folders", help="a folder with one subfolder of photos per person")
    p.add_argument("--largest-face", action="store_true", help="in a photo with several faces, take the largest "
                   "(default: refuse the photo); in a video of several people, the one seen largest")
    p.add_argument("--count", type=count, default=5, help="from a video: the best distinct frames to enrol "
                   "(default: 5)")
    p.set_defaults(func=cmd_enroll, takes_videos=True)  # a folder given lends its videos too


def cmd_enroll(args) -> int:
    """Enrol photos of one named person, or a folder per person."""
    if bool(args.folders) == (args.name is not None):  # an empty --name is given: refused as a name, below
        raise KeyfaceError("give either --name NAME PHOTO... or --folders DIR")
    if args.name is not None and not args.photos:
        raise KeyfaceError("--name needs at least one PHOTO")
    from keyface.data.folders import read_person_folders
    from keyface.data.files import shown
    from keyface.recognition.facade import check_name
    todo = read_person_folders(Path(args.folders)) if args.folders else {check_name(args.name): args.photos}
    with open_gallery(args, create=True) as gallery:  # after every check that needs no model
        added, status = 0, 0
        for person, photos in todo.items():
            try:  # one person's bad name is that person's error, never the batch's
                name = check_name(person)
            except KeyfaceError as exc:
                status = report_errors([f"{shown(Path(args.folders or '.') / person)}: {exc}"])
                continue
            try:
                n, errs, kept = _enrol_person(gallery, name, [str(p) for p in photos], args)
            except GalleryUnavailableError:  # whether their last transaction landed is not known to us
                print(f"keyface: {name}: the database went away while their photos were stored: some may be; run "
                      "the same command again once it is back (nothing is stored twice)", file=sys.stderr)
                raise
            added += n
            print(f"{name}: {n} photo(s) added" + (f" ({kept} already enrolled)" if kept else ""), flush=True)
            # each person's refusals said with them: a run stopped later (Ctrl-C, an outage) has told them already
            status = report_errors(errs) or status
        if gallery.exists:
            people = len(gallery.people())
            print(f"gallery {gallery.path}: {people} {'person' if people == 1 else 'people'}; {added} photo(s) added")
        else:
            print(f"gallery {gallery.path} not made: no photo was added")
    return status


def _enrol_person(gallery, name: str, photos: list[str], args) -> tuple[int, list, int]:
    """Enrol one person's photos, and the best frames of each of their videos: (added, errors, photos that were
    already this person's in the gallery)."""
    from keyface.data.images import is_video_file
    videos, pictures = [], []
    for photo in photos:
        (videos if is_video_file(photo) else pictures).append(photo)
    added, errors = 0, []
    if pictures:
        added, errors = gallery.enrol(name, pictures, largest_face=args.largest_face, progress=sys.stderr.isatty(),
                                      workers=os.cpu_count() or 1)
    already = len(pictures) - added - len(errors)  # neither added nor refused
    for clip in videos:
        try:
            n, errs = gallery.enrol_video(name, clip, args.count, args.largest_face)
        except KeyfaceError as exc:  # this video's error; the person's other photos and videos go on
            n, errs = 0, [exc]
        added, errors = added + n, errors + errs
    return added, errors, already
