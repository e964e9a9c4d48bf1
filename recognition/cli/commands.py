"""`keyface enroll | identify | verify | embed | people | rename | remove | reindex`."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from keyface.data.errors import KeyfaceError
from keyface.data.paths import user_dir
from keyface.keypoints.detector import DEFAULT_DETECTOR, DETECTORS
from keyface.recognition.cli import flags
from keyface.recognition.approaches.registry import DEFAULT_EMBEDDER, EMBEDDER_NAMES

log = logging.getLogger(__name__)


def default_gallery() -> Path:
    """The per-user gallery file."""
    return user_dir("galleries") / "gallery.db"


def _gallery_flags(p, embedder: bool = True) -> None:
    p.add_argument("--gallery", help="gallery file (default: the per-user gallery.db)")
    if embedder:
        p.add_argument("--embedder", default=DEFAULT_EMBEDDER,
                       help=f"{', '.join(EMBEDDER_NAMES)} (default: {DEFAULT_EMBEDDER}, the most accurate measured)")
        p.add_argument("--embedder-model", help="embedder model file (default: models dir, then shipped)")
        p.add_argument("--keypoint-model", help="keypoint model for alignment (default: shipped)")
        p.add_argument("--detector", choices=sorted(DETECTORS), default=DEFAULT_DETECTOR,
                       help=f"face detector (default: {DEFAULT_DETECTOR}; mtcnn finds smaller faces, ~40x slower)")
        p.add_argument("--threshold", type=flags.distance, help="distance cut: beyond it a face is unknown (identify) or "
                       "another person (verify) (default: the model's calibrated cuts)")
    p.add_argument("--models", help="models directory (default: $KEYFACE_MODELS, then per-user)")


def register(sub) -> None:
    """Add the gallery and recognition commands."""
    p = sub.add_parser("enroll", help="add people's photos to the gallery")
    p.add_argument("photos", nargs="*", metavar="PHOTO")
    p.add_argument("--name", help="the person in the photos")
    p.add_argument("--folders", help="a folder with one subfolder of photos per person")
    p.add_argument("--largest-face", action="store_true", help="in a photo with several faces, take the largest "
                   "(default: refuse the photo)")
    _gallery_flags(p)
    p.set_defaults(func=cmd_enroll)
    p = sub.add_parser("identify", help="name every face in photos against the gallery")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--json", action="store_true")
    p.add_argument("--top", type=flags.count, default=3, help="matches to list per face")
    p.add_argument("--annotate", help="directory for copies with boxes, keypoints and names")
    p.add_argument("--head", action="store_true", help="name faces with the gallery's softmax head (train-head)")
    p.add_argument("--min-probability", type=flags.probability, default=0.5, help="with --head: unknown below this")
    p.add_argument("--far", type=flags.rate, help="name at most this share of strangers (people not enrolled), by the "
                   "model's calibration on held-out people (default: its stored cut, 0.01)")
    p.add_argument("--index", choices=["exact", "faiss"], default="exact",
                   help="exact NumPy search, or FAISS for very large galleries (pip install 'keyface[ann]')")
    _gallery_flags(p)
    p.set_defaults(func=cmd_identify)
    p = sub.add_parser("verify", help="are two photos the same person?")
    p.add_argument("photo_a", metavar="A")
    p.add_argument("photo_b", metavar="B")
    p.add_argument("--json", action="store_true")
    p.add_argument("--largest-face", action="store_true", help="in a photo with several faces, take the largest")
    _gallery_flags(p)
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("embed", help="each face's box, keypoints and embedding")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--json", action="store_true", help="(the output is always JSON)")
    _gallery_flags(p)
    p.set_defaults(func=cmd_embed)
    _register_people(sub)


def _register_people(sub) -> None:
    p = sub.add_parser("people", help="list the gallery's people and photo counts")
    p.add_argument("--json", action="store_true")
    _gallery_flags(p, embedder=False)
    p.set_defaults(func=cmd_people)
    p = sub.add_parser("rename", help="rename a person")
    p.add_argument("old")
    p.add_argument("new")
    _gallery_flags(p, embedder=False)
    p.set_defaults(func=cmd_rename)
    p = sub.add_parser("remove", help="remove a person and their photos")
    p.add_argument("name")
    _gallery_flags(p, embedder=False)
    p.set_defaults(func=cmd_remove)
    p = sub.add_parser("train-head", help="retrain a softmax head on the gallery (identify --head uses it)")
    p.add_argument("--epochs", type=flags.count, default=200)
    _gallery_flags(p)
    p.set_defaults(func=cmd_train_head)
    p = sub.add_parser("reindex", help="re-embed a gallery's photos with another embedder (the old one is "
                       "kept as GALLERY.bak)")
    _gallery_flags(p)
    p.set_defaults(func=cmd_reindex)
    p = sub.add_parser("check", help="check a gallery: SQLite integrity and every stored embedding")
    _gallery_flags(p, embedder=False)
    p.set_defaults(func=cmd_check)


def recogniser(args):
    """The pipeline and the embedder the flags name (keyface.api.build)."""
    from keyface.api import build
    return build(args.embedder, args.models, model=args.embedder_model, keypoint_model=args.keypoint_model,
                 threshold=args.threshold, far=getattr(args, "far", None),
                 detector=getattr(args, "detector", DEFAULT_DETECTOR),
                 several_faces="largest" if getattr(args, "largest_face", False) else "refuse")


def gallery_path(args) -> Path:
    """The gallery file the command names (--gallery), or the per-user default."""
    if args.gallery is None:
        return default_gallery()
    if not args.gallery.strip():
        raise KeyfaceError("--gallery is empty: give a gallery file, or leave the flag out for the default")
    return Path(args.gallery)


def open_gallery(args, rec=None, create: bool = False):
    """The gallery for this embedder (refused if it was made by another); only `create` makes a new one."""
    from keyface.recognition.core.gallery import Gallery
    path = gallery_path(args)
    if rec is None:  # people/rename/remove: any embedder's gallery will do
        from keyface.recognition.core.gallery import read_meta
        meta = read_meta(path)
        return Gallery(path, meta["embedder"], meta["version"], int(meta["dim"]), create=False)
    return Gallery(path, rec.embedder.name, rec.embedder.version, rec.embedder.dim, create=create)


def _report(errors: list[str]) -> int:
    for e in errors:
        print(f"keyface: error: {e}", file=sys.stderr)
    return 2 if errors else 0


def cmd_enroll(args) -> int:
    """Enrol photos of one named person, or a folder per person."""
    if bool(args.folders) == bool(args.name):
        raise KeyfaceError("give either --name NAME PHOTO... or --folders DIR")
    if args.name and not args.photos:
        raise KeyfaceError("--name needs at least one PHOTO")
    from keyface.data.folders import read_person_folders
    from keyface.data.files import shown
    from keyface.recognition.core.gallery import check_name
    todo = read_person_folders(Path(args.folders)) if args.folders else {check_name(args.name): args.photos}
    rec = recogniser(args)
    with open_gallery(args, rec, create=True) as gallery:
        added, errors = 0, []
        for person, photos in todo.items():
            try:  # one person's bad name is that person's error, never the batch's
                name = check_name(person)
            except KeyfaceError as exc:
                errors.append(f"{shown(Path(args.folders or '.') / person)}: {exc}")
                continue
            n, errs = rec.enrol(gallery, name, [str(p) for p in photos])
            added, errors = added + n, errors + errs
            print(f"{name}: {n} photo(s) added")
        print(f"gallery {gallery.path}: {len(gallery.people())} people; {added} photo(s) added")
    return _report(errors)


def cmd_identify(args) -> int:
    """Identify every face in every photo."""
    rec = recogniser(args)
    gallery = open_gallery(args, rec)
    if not gallery.people():
        raise KeyfaceError(f"gallery {gallery.path} is empty: enrol people first (keyface enroll)")
    out, errors = [], []
    for photo in args.photos:
        try:
            results = rec.identify(gallery, photo, args.top, args.index, by_distance=not args.head)
        except KeyfaceError as exc:
            errors.append(str(exc))
            out.append({"photo": photo, "error": str(exc), "faces": []})
            continue
        if not results:
            errors.append(f"{photo}: no face found")
        if args.head:
            _name_by_head(results, gallery, args.min_probability)
        out.append({"photo": photo, "faces": [_face_json(r) for r in results]})
        if args.annotate:
            from keyface.recognition.core.annotate import annotate_identities
            annotate_identities(photo, results, Path(args.annotate))
    _print_identities(out, None if args.head else rec.identify_threshold, args.json)
    return _report(errors)


def head_path(gallery) -> Path:
    """Where a gallery's softmax head lives: beside the gallery file."""
    return gallery.path.with_name(gallery.path.name + ".head.keras")


def _name_by_head(results: list, gallery, min_probability: float) -> None:
    """Replace nearest-embedding names by the softmax head's (unknown below min_probability)."""
    from keyface.recognition.core.head import GalleryHead
    if not head_path(gallery).is_file():
        raise KeyfaceError(f"no softmax head for {gallery.path}: run `keyface train-head --gallery {gallery.path}`")
    head = GalleryHead(head_path(gallery), gallery.embedder, gallery.version)
    if results:
        names, probs = head.classify([r.embedding for r in results])
        for r, name, p in zip(results, names, probs):
            r.name = str(name) if p >= min_probability else None


def cmd_train_head(args) -> int:
    """Fit the softmax head on the gallery's embeddings."""
    from keyface.recognition.core.head import train_head
    rec = recogniser(args)
    gallery = open_gallery(args, rec)
    path = train_head(gallery, head_path(gallery), args.epochs)
    print(f"softmax head over {len(gallery.people())} people written to {path}")
    return 0


def _face_json(r) -> dict:
    return {**r.face.to_json(), "name": r.name or "unknown",
            "matches": [{"person": m.person, "distance": round(m.distance, 4)} for m in r.matches]}


def _print_identities(out: list[dict], threshold: float | None, as_json: bool) -> None:
    """The identities as JSON or a line per face; threshold None means the softmax head named them."""
    rule = "softmax head" if threshold is None else f"threshold {threshold:.3f}"
    if as_json:
        print(json.dumps({"threshold": threshold, "photos": out}, indent=2))
        return
    for item in out:
        for i, f in enumerate(item["faces"]):
            best = ", ".join(f"{m['person']} {m['distance']:.3f}" for m in f["matches"])
            print(f"{item['photo']} face {i + 1}: {f['name']}  (nearest: {best}; {rule})")


def cmd_verify(args) -> int:
    """Same person or not."""
    rec = recogniser(args)
    same, distance = rec.verify(args.photo_a, args.photo_b)
    result = {"same": same, "distance": round(distance, 4), "threshold": round(rec.threshold, 4)}
    print(json.dumps(result) if args.json else f"{'same person' if same else 'different people'} "
          f"(distance {distance:.4f}, threshold {rec.threshold:.4f})")
    return 0


def cmd_embed(args) -> int:
    """Boxes, keypoints and embeddings of every face, as JSON."""
    rec = recogniser(args)
    photos, errors = rec.faces_of(args.photos)
    out = []
    for photo, _, faces, vectors in photos:
        out.append({"photo": photo, "embedder": rec.embedder.name, "version": rec.embedder.version, "faces": [
            {**f.to_json(), "embedding": [round(float(x), 6) for x in v]} for f, v in zip(faces, vectors)]})
    print(json.dumps(out, indent=2))
    return _report(errors)


def cmd_people(args) -> int:
    """List people and photo counts."""
    with open_gallery(args) as gallery:
        people = gallery.people()
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
    print(f"renamed {args.old!r} to {args.new!r}")
    return 0


def cmd_remove(args) -> int:
    """Remove a person."""
    with open_gallery(args) as gallery:
        n = gallery.remove(args.name)
    print(f"removed {args.name!r} and {n} photo(s)")
    return 0


def cmd_reindex(args) -> int:
    """Re-embed a gallery with another embedder (recognition.gallery_check.rewrite: locked, backed up to
    `.bak`, rebuilt aside, checked, then copied into place through SQLite)."""
    from keyface.recognition.core.gallery_check import rewrite
    from keyface.recognition.core.service import reindex
    path = gallery_path(args)
    if not path.is_file():
        raise KeyfaceError(f"gallery not found: {path}")
    rec = recogniser(args)
    added, errors = rewrite(path, lambda source, scratch: reindex(source, rec, scratch))
    print(f"reindexed {added} photo(s) with {rec.embedder.name} (model {rec.embedder.version}); "
          f"the old gallery is {path.name}.bak")
    return _report(errors)


def cmd_check(args) -> int:
    """Check a gallery: SQLite's integrity check and every stored vector; exit 1 if anything is wrong."""
    from keyface.recognition.core.gallery_check import check_gallery
    path = gallery_path(args)
    problems = check_gallery(path)
    for problem in problems:
        print(f"{path}: {problem}")
    print(f"{path}: {'damaged' if problems else 'ok'}")
    return 1 if problems else 0
