"""A gallery's people, without any model: who is enrolled, renaming, removing, thumbnails.

A base of `recognition.facade.Gallery`, which gives it `_opened()` (the store, `_store`, or None while the
gallery is not made), `path`, and `_head` (its softmax head, checked against the people again once they change).
"""
from __future__ import annotations

from keyface.data.errors import GalleryConflictError, PersonNotFoundError
from keyface.recognition.core.records import check_name


class GalleryPeople:
    """The verbs on a gallery's people that `keyface.Gallery` has; none of them loads a model."""

    def people(self) -> dict[str, int]:
        """Each enrolled person's number of photos, by name."""
        store = self._opened()
        return {} if store is None else dict(store.people())

    def rename(self, old: str, new: str) -> None:
        """Rename a person."""
        if check_name(old, existing=True) == check_name(new):  # what rules the names alike: NFC, stripped
            raise GalleryConflictError(f"{check_name(new)!r} is already that person's name")
        self._made(old).rename(old, new)
        self._head = None  # checked against the people again when next asked for

    def remove(self, name: str) -> int:
        """Remove a person and their photos; returns how many photos went."""
        self._head = None  # checked against the people again when next asked for
        return self._made(name).remove(name)

    def thumbnail(self, name: str) -> bytes:
        """A small JPEG of the person's first enrolled face."""
        return self._made(name).thumbnail(check_name(name, existing=True))

    def _made(self, person: str):
        """The store, of a gallery already made: in a new one no one is enrolled yet."""
        if self._opened() is None:
            raise PersonNotFoundError(f"no person named {check_name(person, existing=True)!r} in {self.path}")
        return self._store
