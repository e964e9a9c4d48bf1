"""Reader for a folder-per-person photo tree: root/<person>/<photo>.jpg (a person's photos may lie in subfolders)."""
from __future__ import annotations

import logging
from pathlib import Path

from keyface.data.errors import DataError
from keyface.data.images import is_image_file

log = logging.getLogger(__name__)

# Files with these names are photos even when damaged (the loader then names the fault instead of the
# photo vanishing silently); any other file counts when Pillow can open it (.pgm, .ppm, .gif, ...).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".avif", ".heic", ".heif"}
LAYOUT = "root/<person>/<photo>.jpg"


def _is_hidden(path: Path) -> bool:
    """True for dot-files and dot-folders (.DS_Store, .git, ._AppleDouble) that are never photos."""
    return path.name.startswith(".")


def _images_in(folder: Path, recursive: bool = False) -> list[Path]:
    """Sorted image files inside folder (an image suffix, or any file Pillow can open), and with `recursive` in
    its subfolders too (a person's "2019/", "trip/"); other files are skipped with a debug message."""
    images = []
    for path in sorted(folder.iterdir()):
        if _is_hidden(path):
            continue
        if recursive and path.is_dir() and not path.is_symlink():  # a link to a folder could loop
            images.extend(_images_in(path, recursive))
        elif path.is_file() and (path.suffix.lower() in IMAGE_SUFFIXES or is_image_file(path)):
            images.append(path)
        else:
            log.debug("skipping %s: not an image file", path)
    return images


def _say_if_nested(folder: Path, images: list[Path]) -> None:
    """Warn when a person's photos all lie in two or more subfolders: "2019/" and "2020/" of one person, or a
    "Family/" folder of several people, which would be enrolled as one person named after the folder."""
    subfolders = sorted({p.relative_to(folder).parts[0] for p in images if p.parent != folder})
    if len(subfolders) >= 2 and all(p.parent != folder for p in images):
        log.warning("%s: all its photos are in its subfolders (%s): they are taken as one person, %r; if those "
                    "are several people, give that folder instead", folder, ", ".join(subfolders[:3]) +
                    (", ..." if len(subfolders) > 3 else ""), folder.name)


def read_person_folders(root: Path, min_images: int = 1) -> dict[str, list[Path]]:
    """Map each person folder under root (sorted) to its sorted image paths."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"photo folder {root} is not a directory (expected layout {LAYOUT})")
    people: dict[str, list[Path]] = {}
    dropped = 0
    for folder in sorted(root.iterdir()):
        if _is_hidden(folder) or not folder.is_dir():
            continue
        images = _images_in(folder, recursive=True)
        if not images:
            continue
        _say_if_nested(folder, images)
        if len(images) < min_images:
            dropped += 1
            log.debug("dropping %s: %d image(s), fewer than %d",
                      folder.name, len(images), min_images)
            continue
        people[folder.name] = images
    if not people:
        why = f" with at least {min_images} images" if dropped else " with images"
        raise DataError(f"no person folder{why} found in {root} (expected layout {LAYOUT})")
    loose = _images_in(root)
    if loose:  # a person's photos are known by their folder: these have none
        log.warning("%s: %d photo(s) directly in the folder (%s...) left out: a person's photos go in a "
                    "subfolder named after them", root, len(loose), loose[0].name)
    if dropped:
        log.info("%s: kept %d people, dropped %d with fewer than %d images",
                 root, len(people), dropped, min_images)
    return people
