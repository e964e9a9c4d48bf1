"""Looking after a gallery as a whole: re-embed it with another embedder (`reindex`), copy it between a file
and PostgreSQL (`migrate`), replace a database's content with a file's, and check it. Each is checked end
to end: what is written is read back and compared, and a failure leaves the old gallery as it was."""
from __future__ import annotations

import logging
from pathlib import Path

from keyface.data.errors import GalleryConflictError, GalleryError, KeyfaceError, OtherModelError, SourcePhotoMissingError
from keyface.data.files import shown
from keyface.data.paths import is_database_uri, shown_location
from keyface.recognition.core.gallery_check import check_gallery as check_file
from keyface.recognition.core.pipeline import Recogniser
from keyface.recognition.core.records import Enrolment
from keyface.recognition.facade import Gallery, made_by, open_store

log = logging.getLogger(__name__)


def reindex(source, recogniser: Recogniser, out: Path,
            skip_missing: bool = False) -> tuple[int, list[KeyfaceError], list[str]]:
    """Re-embed every photo of a gallery (a file or a database) with another recogniser into a new gallery file:
    (photos added, each photo's error, the photos left out). A photo whose file is gone or changed is refused,
    nothing written; with `skip_missing` it is left out of the new gallery, and named in the list."""
    from keyface.data.images import image_sha256
    from keyface.recognition.core.video_enrol import frame_enrolment, video_frame
    by_person: dict[str, list[str]] = {}
    frames: dict[str, list[tuple[str, Enrolment]]] = {}
    left_out, everyone = [], set()
    for person, sha, path in _reader(source).photos():
        everyone.add(person)
        if video_frame(path) is not None:  # a frame of an enrolled video: read again from the video
            frames.setdefault(person, []).append(frame_enrolment(recogniser, person, path, sha))
        elif Path(path).is_file() and image_sha256(path) == sha:
            by_person.setdefault(person, []).append(path)
        else:
            left_out.append(f"{shown(path)} (enrolled for {person})")
    _check_left(left_out, skip_missing, everyone and not (by_person or frames))
    for photo in left_out:
        log.warning("left out: %s is missing or changed", photo)
    for person in sorted(everyone - by_person.keys() - frames.keys()):  # said once: they are gone, not a photo
        log.warning("%r is left out of the new gallery: none of their photos is left", person)
    added, errors = 0, []
    # made now, even for a gallery of no one: the rewrite checks the new file
    open_store(out, recogniser.embedder.name, recogniser.embedder.version, recogniser.embedder.dim).close()
    with Gallery(out, recogniser) as target:
        for person in {**by_person, **frames}:
            # every stored photo was enrolled by its one face or its largest: taking the largest finds that face again
            n, errs = target.enrol(person, by_person.get(person, []), largest_face=True)
            m, refused = target.store_enrolments(person, frames.get(person, []), None)
            added, errors = added + n + m, errors + errs + refused
    return added, errors, left_out


def _check_left(left_out: list[str], skip_missing: bool, nothing_left: bool) -> None:
    """Refuse a reindex, before anything is written, that would leave out photos not asked to be left out (all
    of them named, up to five), or every photo of the gallery."""
    named = "; ".join(left_out[:5]) + (f"; and {len(left_out) - 5} more" if len(left_out) > 5 else "")
    if left_out and not skip_missing:
        raise SourcePhotoMissingError(f"cannot reindex: {len(left_out)} photo(s) missing or changed since they were "
                                      f"enrolled ({named}); nothing was modified: put them back, leave such photos "
                                      "out, or remove those people and enrol them again")
    if nothing_left:
        raise SourcePhotoMissingError(f"cannot reindex: none of the gallery's photos is left where it was enrolled "
                                      f"from ({named}); nothing was modified: it would empty the gallery")


def _reader(location):
    """A gallery opened only to read (core.migrate.Reader); refused where there is no gallery."""
    from keyface.recognition.core.migrate import Reader
    made = made_by(location)
    if "embedder" not in made:
        raise GalleryError(f"no keyface gallery at {shown_location(location)}")
    return Reader(location, made["embedder"], made["version"], int(made["dim"]))


def migrate(source, target):
    """Copy a gallery (a file or a `postgresql://` database) into a new one, or an empty one of its embedder, in
    one transaction, then read both back and compare them; the source is only read. Returns what was copied
    (core.migrate.Counts)."""
    from keyface.recognition.core.migrate import copy_into
    reader = _reader(source)
    if _same_gallery(source, target):
        raise GalleryError("the source and the target are the same gallery")
    new_file = not is_database_uri(target) and not Path(target).exists()
    try:
        with open_store(target, reader.embedder, reader.version, reader.dim, create=True) as store:
            copy_into(reader, store)
    except OtherModelError as exc:  # the way out is a reindex of one of the two, not another flag of migrate's
        raise GalleryConflictError(f"{shown_location(target)} holds {exc.made}'s vectors (another model or "
                                   f"precision than {shown_location(source)}'s); nothing was copied: migrate into a "
                                   "new gallery, or reindex one of the two to the other's embedder and precision "
                                   "first") from None
    except BaseException:
        if new_file:  # a file made for this copy and left empty by its failure goes again
            Path(target).unlink(missing_ok=True)
        raise
    log.info("copied; reading both back to compare them")
    _compare(reader, target, f"the copy in {shown_location(target)} differs from {shown_location(source)}")
    return reader.counts()


def _same_gallery(a, b) -> bool:
    """Whether two gallery locations name one gallery (one URI, or one file by any path)."""
    if is_database_uri(a) or is_database_uri(b):
        return shown_location(a) == shown_location(b)
    return Path(a).exists() and Path(b).exists() and Path(a).samefile(b)


def replace_gallery(target, source: Path) -> None:
    """Replace a database gallery's whole content (people, photos, vectors, embedder) with a gallery file's, in
    one transaction, then compare the two (reindex of a database)."""
    from keyface.recognition.core.migrate import copy_into
    reader, old = _reader(source), _reader(target)
    with open_store(target, old.embedder, old.version, old.dim, create=False) as store:
        copy_into(reader, store, replace=True)
    _compare(reader, target, f"the new content of {shown_location(target)} differs from its re-embedding")


def _compare(reader, target, what: str) -> None:
    """Read the target back and refuse it (GalleryError: `what` and the first difference) unless it equals the
    source the reader reads."""
    from keyface.recognition.core.migrate import differences
    problems = differences(reader, _reader(target))
    if problems:
        raise GalleryError(f"{what}: {problems[0]}")


def check_gallery(location) -> list[str]:
    """Every problem found in a gallery (its structure and each stored vector); none means it is sound."""
    if is_database_uri(location):
        from keyface.recognition.core.pg_store import check_database
        return check_database(str(location))
    return check_file(Path(location))
