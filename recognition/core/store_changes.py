"""What changes a gallery file's people, one transaction each: enrolments added (the vector file beside a
large gallery extended with them), people renamed and removed, thumbnails kept; and the reads that go with
them. `core.store.SQLiteStore` is made of this and of what opens, checks and searches the file."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from keyface.data.errors import GalleryConflictError, PersonNotFoundError
from keyface.data.files import shown
from keyface.recognition.core.records import Enrolment, check_name, checked_vector, path_text
from keyface.recognition.core.search import VectorFile


class GalleryChanges:
    """The people side of core.store.SQLiteStore (its `conn`, `path`, `embedder`, `version`, `dim`, `_using`
    and `_stamp` are the store's). Each public method holds the store's lock (`_using`), as the store's own do:
    every thread shares its one SQLite connection, and a transaction must never take in another thread's
    writes."""

    @contextmanager
    def _writing(self):
        """One write transaction, begun at once (BEGIN IMMEDIATE), not at its first write: what it reads (is this
        person there, whose is this photo) still holds when it writes, whatever another process does meanwhile."""
        with self._using, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            yield

    def add(self, faces: list[Enrolment]) -> int:
        """Store faces in one transaction; a photo already stored for that person is skipped. Returns added.
        A vector file beside the gallery that held its content gets the new rows too."""
        with self._using:
            added, rows = 0, []
            with self._writing():
                for face in faces:
                    person = check_name(face.person)
                    owner = self.other_owner(face.sha256, person)
                    if owner is not None:
                        raise GalleryConflictError(f"{shown(face.source)} is already enrolled as {owner!r}")
                    person_id = self._person_id(person, create=True)
                    cur = self.conn.execute("INSERT OR IGNORE INTO photos (person_id, sha256, source, box, keypoints) "
                                            "VALUES (?,?,?,?,?)",
                                            (person_id, face.sha256, path_text(face.source), *face.face_json()))
                    if cur.rowcount == 0:
                        continue
                    self.conn.execute("INSERT INTO embeddings VALUES (?,?,?,?)", (
                        cur.lastrowid, self.embedder, self.version, _blob(face.embedding, self.dim)))
                    rows.append((person_id, face.embedding))
                    added += 1
                after = self._stamp()  # in the transaction: exactly this change's generation
            if rows:
                self._append(after, rows)
            return added

    def _append(self, after: dict, rows: list) -> None:
        """Add an enrolment's rows to the vector file, if it held the content just before this change."""
        files = VectorFile(self.path)
        if files.header() is not None:
            before = {**after, "generation": after["generation"] - len(rows)}
            files.append(before, after, np.stack([np.asarray(v, np.float32).reshape(-1) for _, v in rows]),
                         np.array([i for i, _ in rows], np.int64))

    def owner_of(self, sha256: str) -> str | None:
        """The person a photo (by content hash) is enrolled as, if any."""
        with self._using:
            row = self.conn.execute("SELECT p.name FROM photos ph JOIN people p ON p.id = ph.person_id "
                                    "WHERE ph.sha256 = ? LIMIT 1", (sha256,)).fetchone()
            return row[0] if row else None

    def other_owner(self, sha256: str, person: str) -> str | None:
        """Someone other than `person` this photo is already enrolled as: one photo, two names would tie."""
        owner = self.owner_of(sha256)
        return owner if owner is not None and owner != person else None

    def _person_id(self, name: str, create: bool = False) -> int:
        name = check_name(name, existing=not create)
        row = self.conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row:
            return row[0]
        if not create:
            raise PersonNotFoundError(f"no person named {name!r} in {self.path}")
        return self.conn.execute("INSERT INTO people (name) VALUES (?)", (name,)).lastrowid

    def rename(self, old: str, new: str) -> None:
        """Rename a person (refused if the new name is taken)."""
        new = check_name(new)
        with self._writing():
            person_id = self._person_id(old)
            if self.conn.execute("SELECT 1 FROM people WHERE name = ?", (new,)).fetchone():
                raise GalleryConflictError(f"{new!r} is already in the gallery")
            self.conn.execute("UPDATE people SET name = ? WHERE id = ?", (new, person_id))

    def remove(self, name: str) -> int:
        """Remove a person with their photos and embeddings; return how many photos went."""
        with self._writing():
            person_id = self._person_id(name)
            n = self.conn.execute("SELECT COUNT(*) FROM photos WHERE person_id = ?", (person_id,)).fetchone()[0]
            self.conn.execute("DELETE FROM people WHERE id = ?", (person_id,))
        return n

    def set_thumbnail(self, name: str, jpeg: bytes) -> None:
        """Keep a small face picture for a person (the first one given stays)."""
        with self._using, self.conn:
            self.conn.execute("INSERT OR IGNORE INTO thumbnails VALUES (?, ?)", (self._person_id(name), jpeg))

    def thumbnail(self, name: str) -> bytes:
        """A person's face picture (JPEG); a GalleryError if there is none."""
        with self._using:
            row = self.conn.execute("SELECT jpeg FROM thumbnails WHERE person_id = ?",
                                    (self._person_id(name),)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no thumbnail for {name!r}")
        return bytes(row[0])


def _blob(vector: np.ndarray, dim: int) -> bytes:
    """An embedding as float32 bytes, checked for its dimension and finiteness."""
    return checked_vector(vector, dim).tobytes()
