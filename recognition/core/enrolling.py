"""One person's photos made ready to enrol, a chunk at a time: the next chunk's faces are found while this
chunk's are embedded, and memory stays bounded however many photos there are."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from keyface.recognition.core.pipeline import Recogniser, label

ENROL_CHUNK = 32  # photos found, then embedded together: one pass of the network, memory bounded


def ready_to_enrol(chooser: Recogniser, person: str, photos: list, workers: int = 1,
                   progress: bool = False) -> tuple[list, list, bytes | None]:
    """Each photo found and embedded by `chooser`: ((photo's name, Enrolment) of each photo ready, the error of
    each photo that failed, a thumbnail of the first face for the page)."""
    from tqdm import tqdm
    chunks = [photos[i: i + ENROL_CHUNK] for i in range(0, len(photos), ENROL_CHUNK)]
    ready, errors, thumbnail = [], [], None
    with tqdm(total=len(photos), desc=f"enrolling {person}", unit="photo",
              disable=not progress or len(photos) < 5) as bar, ThreadPoolExecutor(1) as ahead:
        pending = ahead.submit(chooser.enrolments, person, chunks[0], workers) if chunks else None
        for k in range(len(chunks)):
            prepared = pending.result()
            if k + 1 < len(chunks):
                pending = ahead.submit(chooser.enrolments, person, chunks[k + 1], workers)
            errors += [p.error for p in prepared if p.error]
            ready += [(label(photo), p.enrolment) for photo, p in zip(chunks[k], prepared) if not p.error]
            first = next((p for p in prepared if not p.error), None)
            if thumbnail is None and first is not None:  # the page shows one a person
                thumbnail = first.thumbnail
            bar.update(len(chunks[k]))
    return ready, errors, thumbnail


def store_checked(store, person: str, ready: list, thumbnail: bytes | None) -> tuple[int, list]:
    """Store a person's enrolments (each with its photo's name for messages) in one transaction, refusing a photo
    already enrolled as someone else, and their thumbnail if they have none yet: (added, each refusal)."""
    from keyface.data.errors import GalleryConflictError
    keep, refused = [], []
    for photo, enrolment in ready:
        owner = store.other_owner(enrolment.sha256, person)
        if owner is None:
            keep.append(enrolment)
        else:
            refused.append(GalleryConflictError(f"{photo}: already enrolled as {owner!r}"))
    added = store.add(keep)
    if thumbnail and keep:
        store.set_thumbnail(person, thumbnail)
    return added, refused
