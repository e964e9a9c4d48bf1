"""Reader for Labeled Faces in the Wild (deep-funneled images and the official protocol files)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from keyface.data.errors import DataError
from keyface.data.paths import require_file

log = logging.getLogger(__name__)

IMAGES_DIR = "lfw-deepfunneled"
PROTOCOL_DIR = "protocol"
# View 1 (development) splits and their protocol files.
VIEW1_SPLITS = ("DevTrain", "DevTest")


@dataclass(frozen=True)
class Pair:
    """Two LFW images and whether they show the same person."""
    path_a: Path
    path_b: Path
    person_a: str
    person_b: str
    same: bool


def _lines(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """Return (1-based line number, whitespace-split fields) for every non-blank line of path."""
    require_file(path, what)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc.__class__.__name__})") from None
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _int(path: Path, lineno: int, token: str, what: str, minimum: int = 0) -> int:
    """Parse token as an integer >= minimum or raise DataError naming file and line."""
    try:
        value = int(token)
    except ValueError:
        raise DataError(f"{path}: line {lineno}: {what} {token!r} is not an integer") from None
    if value < minimum:
        raise DataError(f"{path}: line {lineno}: {what} {value} is below {minimum}")
    return value


def _expect_fields(path: Path, lineno: int, fields: list[str], counts: tuple[int, ...]) -> None:
    """Raise DataError unless the line has one of the allowed field counts."""
    if len(fields) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise DataError(f"{path}: line {lineno}: expected {want} fields, got {len(fields)}")


class LFW:
    """Labeled Faces in the Wild under root/lfw; protocol files are parsed when asked for."""

    def __init__(self, root: Path) -> None:
        """Check that root/lfw/lfw-deepfunneled exists; root is the data root containing lfw/."""
        self.base = Path(root) / "lfw"
        self.images_dir = self.base / IMAGES_DIR
        self.protocol_dir = self.base / PROTOCOL_DIR
        if not self.images_dir.is_dir():
            raise DataError(f"LFW image folder not found: {self.images_dir}")

    # -- people -------------------------------------------------------------------------------

    def image_count(self, split: str) -> dict[str, int]:
        """Person -> number of images for 'DevTrain', 'DevTest' or 'all' (counted on disk)."""
        if split == "all":
            return {p: len(self.images_of(p)) for p in self.people("all")}
        path = self._people_file(split)
        rows = _lines(path, "LFW people file")
        if not rows:
            raise DataError(f"{path}: empty")
        n, fields = rows[0]
        _expect_fields(path, n, fields, (1,))
        expected = _int(path, n, fields[0], "count")
        counts = self._name_counts(path, rows[1:])
        if len(counts) != expected:
            raise DataError(f"{path}: header says {expected} people, found {len(counts)}")
        return counts

    def people(self, split: str) -> list[str]:
        """Names of the people in a split: 'DevTrain', 'DevTest' (file order) or 'all' (sorted)."""
        if split == "all":
            return sorted(p.name for p in self.images_dir.iterdir()
                          if p.is_dir() and not p.name.startswith("."))
        return list(self.image_count(split))

    def view2_fold_people(self) -> list[list[str]]:
        """The 10 folds of people of View 2, from people.txt."""
        path = self.protocol_dir / "people.txt"
        rows, (n_folds,) = _with_header(path, "LFW people file", ("fold count",))
        folds, pos = [], 1
        for _ in range(n_folds):
            if pos >= len(rows):
                raise DataError(f"{path}: ends after {len(folds)} of {n_folds} folds")
            n, fields = rows[pos]
            _expect_fields(path, n, fields, (1,))
            size = _int(path, n, fields[0], "fold size")
            chunk = rows[pos + 1:pos + 1 + size]
            if len(chunk) != size:
                raise DataError(f"{path}: fold {len(folds) + 1} ends early "
                                f"({len(chunk)} of {size} people)")
            folds.append(list(self._name_counts(path, chunk)))
            pos += 1 + size
        if pos != len(rows):
            raise DataError(f"{path}: line {rows[pos][0]}: extra lines after {n_folds} folds")
        return folds

    # -- images -------------------------------------------------------------------------------

    def image_path(self, person: str, index: int) -> Path:
        """Path of a person's index-th image (1-based): Person/Person_0001.jpg."""
        return self.images_dir / person / f"{person}_{index:04d}.jpg"

    def images_of(self, person: str) -> list[Path]:
        """Sorted existing .jpg files of one person; DataError if the person folder is missing."""
        folder = self.images_dir / person
        if not folder.is_dir():
            raise DataError(f"LFW person folder not found: {folder}")
        return sorted(p for p in folder.iterdir()
                      if p.suffix.lower() == ".jpg" and not p.name.startswith("."))

    # -- pairs --------------------------------------------------------------------------------

    def view1_pairs(self, split: str, check_files: bool = True) -> list[Pair]:
        """View 1 pairs of 'DevTrain' or 'DevTest': N matched then N mismatched."""
        if split not in VIEW1_SPLITS:
            raise DataError(f"unknown LFW View 1 split {split!r}; use one of {list(VIEW1_SPLITS)}")
        path = self.protocol_dir / f"pairs{split}.txt"
        rows, (n_same,) = _with_header(path, "LFW pairs file", ("pair count",))
        if 1 + 2 * n_same != len(rows):
            raise DataError(f"{path}: header promises {2 * n_same} pairs, "
                            f"found {len(rows) - 1} pair lines")
        pairs = self._fold(path, rows[1:], n_same)
        return self._checked(pairs, path, check_files)

    def view2_folds(self, check_files: bool = True) -> list[list[Pair]]:
        """The 10 folds of View 2 from pairs.txt, each matched pairs then mismatched pairs."""
        path = self.protocol_dir / "pairs.txt"
        rows, (n_folds, n_same) = _with_header(path, "LFW pairs file", ("fold count", "pairs per fold"))
        size = 2 * n_same
        if 1 + n_folds * size != len(rows):
            raise DataError(f"{path}: header promises {n_folds} folds of {size} pairs, "
                            f"found {len(rows) - 1} pair lines")
        folds = [self._fold(path, rows[1 + k * size:1 + (k + 1) * size], n_same)
                 for k in range(n_folds)]
        for fold in folds:
            self._checked(fold, path, check_files)
        return folds

    # -- helpers ------------------------------------------------------------------------------

    def _people_file(self, split: str) -> Path:
        """Protocol file listing the people of a View 1 split."""
        if split not in VIEW1_SPLITS:
            raise DataError(f"unknown LFW split {split!r}; use one of "
                            f"{list(VIEW1_SPLITS) + ['all']}")
        return self.protocol_dir / f"people{split}.txt"

    @staticmethod
    def _name_counts(path: Path, rows: list[tuple[int, list[str]]]) -> dict[str, int]:
        """Parse `name count` lines into an ordered dict."""
        counts: dict[str, int] = {}
        for n, fields in rows:
            _expect_fields(path, n, fields, (2,))
            counts[fields[0]] = _int(path, n, fields[1], "image count")
        return counts

    def _fold(self, path: Path, rows: list[tuple[int, list[str]]], n_same: int) -> list[Pair]:
        """Parse n_same matched lines (`name i j`) then n_same mismatched (`a i b j`)."""
        if len(rows) != 2 * n_same:
            raise DataError(f"{path}: expected {2 * n_same} pair lines, found {len(rows)}")
        pairs = []
        for k, (n, fields) in enumerate(rows):
            if k < n_same:
                _expect_fields(path, n, fields, (3,))
                a = b = fields[0]
                i, j = fields[1], fields[2]
            else:
                _expect_fields(path, n, fields, (4,))
                a, i, b, j = fields
            path_a = self.image_path(a, _int(path, n, i, "image index", 1))
            path_b = self.image_path(b, _int(path, n, j, "image index", 1))
            pairs.append(Pair(path_a, path_b, a, b, same=k < n_same))
        return pairs

    @staticmethod
    def _checked(pairs: list[Pair], path: Path, check_files: bool) -> list[Pair]:
        """Return pairs, first checking (when asked) that every image they name exists."""
        if check_files:
            for pair in pairs:
                for image in (pair.path_a, pair.path_b):
                    if not image.is_file():
                        raise DataError(f"{path}: image {image} listed but missing")
        log.debug("%s: %d pairs", path, len(pairs))
        return pairs


def _with_header(path: Path, what: str, names: tuple[str, ...]) -> tuple[list, list[int]]:
    """A protocol file's numbered rows and the integers of its header line (named for errors)."""
    rows = _lines(path, what)
    if not rows:
        raise DataError(f"{path}: empty")
    n, fields = rows[0]
    _expect_fields(path, n, fields, (len(names),))
    return rows, [_int(path, n, value, name) for value, name in zip(fields, names)]
