"""The HTTP API and the page: FastAPI over one Recogniser and one gallery, models loaded once.

Photos arrive as uploads and are decoded in memory (nothing a client sends is used as a file
path); the networks run on the server's worker threads, batched where requests arrive together;
every gallery operation runs on one thread of its own, each write one transaction, so the CLI and
a running server share a gallery file, and several servers on several hosts share a PostgreSQL gallery
(searched in the database, so each sees the others' enrolments on its next identify).
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from contextlib import asynccontextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from keyface.data.errors import EmptyGalleryError, KeyfaceError, OtherModelError, SeveralFacesError
from keyface.data.images import decode_image_bytes, image_sha256
from keyface.data.paths import is_database_uri, shown_location
from keyface.recognition.core.approximate import LiveIndex
from keyface.recognition.answers import photo_json, verify_json
from keyface.recognition.facade import Gallery, check_name
from keyface.recognition.server.guard import ServeConfig, guard, invalid_request, json_error, unreadable_body
from keyface.recognition.server.views import people_json
from keyface.runtime.provenance import keyface_version

log = logging.getLogger(__name__)
STATIC = Path(str(resources.files("keyface.recognition.server") / "static"))
SWAGGER_UI = "swagger-ui-4.15.5"  # the folder swagger-ui-bundle==1.1.0 (setup.cfg) keeps Swagger UI in


class Rename(BaseModel):
    """A person's new name."""
    name: str


class ErrorBody(BaseModel):
    """Every error's answer: one line saying what was wrong."""
    error: str



def _errors_of(*statuses: int) -> dict:
    """OpenAPI's responses for these error statuses, each with keyface's one-line error body."""
    said = {400: "Bad input: an unreadable photo, no face or several, a bad name",
            401: "The API token is missing or wrong (writes; every call where the server is bound beyond this "
                 "machine)",
            404: "No such person",
            409: "In conflict with the gallery: a name or photo already there, or a gallery made with another model "
                 "than the server was started with",
            413: "The upload is too large", 422: "A field is missing or of the wrong kind",
            503: "The gallery's database cannot be reached now: try again shortly"}
    return {status: {"model": ErrorBody, "description": said[status]} for status in statuses}


ERRORS = _errors_of(400, 401, 409, 422, 503)  # any call's
UPLOADS, PEOPLE = _errors_of(413), _errors_of(404, 409)
ENROLLED = {201: {"description": "Photos added (each photo not added has its error)"},
            200: {"description": "No photo added, so nothing made: each photo's error says why, or it was this "
                                 "person's already (already_enrolled)"}, **UPLOADS, **PEOPLE}


class GalleryThread:
    """The gallery, opened once and used from one thread only (SQLite connections are per thread); its
    recogniser is loaded now."""

    def __init__(self, path: Path | str, recogniser, loader=None):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="gallery")
        self.gallery = self.run(lambda: Gallery(path, recogniser, loader=loader))
        self.run(lambda: self.gallery.recogniser)

    def run(self, fn, *args):
        """fn(*args) on the gallery's thread; its result or its exception."""
        return self.pool.submit(fn, *args).result()

    async def run_async(self, fn, *args):
        """run() without holding up the event loop while the gallery's thread works."""
        return await asyncio.wrap_future(self.pool.submit(fn, *args))

    def close(self) -> None:
        """Close the gallery on its thread and stop the thread."""
        self.run(lambda: self.gallery.close())
        self.pool.shutdown()


def create_app(recogniser, config: ServeConfig, loader=None) -> FastAPI:
    """The FastAPI application: JSON API under /api, the page at /. It embeds with `recogniser`, or (None) with
    the gallery's own, loaded by `loader(embedder, precision)` (facade.Gallery)."""
    store = GalleryThread(config.gallery, recogniser, loader)

    @asynccontextmanager
    async def lifespan(_):
        yield
        store.close()
    app = FastAPI(title="keyface", version=keyface_version(), description="Enrol, identify and verify faces.",
                  docs_url=None, openapi_url="/api/openapi.json", redoc_url=None, lifespan=lifespan,
                  responses=ERRORS)
    app.state.store, app.state.config = store, config
    guard(app, config)
    _errors(app, config.gallery)
    _pages(app)
    _photo_routes(app, store)
    _people_routes(app, store)
    _token_in_docs(app)
    return app


def _token_in_docs(app: FastAPI) -> None:
    """The API's description names its token (a bearer token), so the docs page can send it."""
    described = app.openapi

    def with_token() -> dict:
        if app.openapi_schema is None:
            schema = described()
            schema.setdefault("components", {})["securitySchemes"] = {
                "token": {"type": "http", "scheme": "bearer", "description": "the token `keyface serve` prints"}}
            schema["security"] = [{"token": []}]
        return app.openapi_schema
    app.openapi = with_token


def _errors(app: FastAPI, gallery: Path | str) -> None:
    """Every failure becomes a one-line JSON error with a 4xx status; a bug is a 500 without a traceback."""
    @app.exception_handler(KeyfaceError)
    async def keyface_error(_, exc: KeyfaceError):  # each kind carries its status (data/errors.py)
        text = _said(exc, gallery)
        if exc.http_status != 503:
            return json_error(exc.http_status, text)
        log.warning("%s", exc)  # the database's address and error are the operator's, not the client's
        answer = json_error(503, "the gallery's database cannot be reached now; try again shortly")
        answer.headers["Retry-After"] = "1"  # down for now: clients should come back shortly
        return answer

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        said = invalid_request(exc.errors()[0] if exc.errors() else {})
        if said.endswith(": missing") and request.method == "POST" and not _a_form(request):
            said += " (the request's body is not a form: send the fields as multipart/form-data, as `curl -F` does)"
        return json_error(422, said)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if exc.status_code == 400:  # raised only by the framework, for a body it cannot parse: said our way
            return json_error(400, unreadable_body(request.headers.get("content-type", ""), exc.detail))
        return json_error(exc.status_code, exc.detail)

    @app.exception_handler(Exception)
    async def internal(_, exc: Exception):
        log.exception("internal error")
        return json_error(500, f"internal error: {exc.__class__.__name__}")


def _pages(app: FastAPI) -> None:
    """The browser page and its files, served from the package, and the API's Swagger UI from
    swagger-ui-bundle's (it works offline: FastAPI's own loads its files from a CDN)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    swagger = Path(str(resources.files("swagger_ui_bundle") / "vendor" / SWAGGER_UI))
    files = {**{name: STATIC / name for name in ("index.html", "app.js", "style.css")},
             **{f"swagger/{name}": swagger / name for name in ("swagger-ui-bundle.js", "swagger-ui.css")}}
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}  # by suffix, for every file

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/static/{name:path}", include_in_schema=False)
    def static(name: str):
        if name not in files:  # a fixed list: a client's path never reaches the file system
            raise HTTPException(404, "not found")
        return FileResponse(files[name], media_type=types[files[name].suffix])

    @app.get("/api/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title="keyface API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css", swagger_favicon_url="")


def _a_form(request: Request) -> bool:
    """Whether a request's body says it is a form (the photo routes take nothing else)."""
    kind = request.headers.get("content-type", "").lower()
    return kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded"))


async def _photo(upload: UploadFile, name: str):
    """An uploaded photo decoded in memory on a worker thread (size and pixels checked before decoding); `name`
    is what its errors call it."""
    return await _in_thread(decode_image_bytes, await upload.read(), name)


async def _one_each(request: Request, *fields: str) -> None:
    """Refuse a form that sends one of these fields more than once (only one would be looked at)."""
    form = await request.form()  # already read for the route's arguments: not read again
    for field, sent in ((field, len(form.getlist(field))) for field in fields):
        if sent > 1:
            raise HTTPException(422, f"{field}: sent {sent} times; a request takes one")


def _upload_name(upload: UploadFile) -> str:
    """An uploaded photo's file name, as messages and answers show it (never used as a path), on one line: a
    character that does not print is written as its escape."""
    name = Path(upload.filename or "photo").name[:200] or "photo"
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)


async def _photo_and_hash(upload: UploadFile) -> tuple[str, object, str]:
    """An uploaded photo decoded, and the SHA-256 of its file, as `keyface enroll` hashes a photo: the same
    photo enrolled from the command line and from the page is one photo."""
    name = _upload_name(upload)
    data = await upload.read()
    return name, await _in_thread(decode_image_bytes, data, name), image_sha256(data)


def _photo_routes(app: FastAPI, store: GalleryThread) -> None:
    """The JSON API on photos: health, identify, verify. A very large gallery file is searched approximately
    once its FAISS index is built (core.approximate.LiveIndex; exact until then)."""
    live = LiveIndex()

    @app.get("/api/health", responses=_errors_of(503))
    def health() -> dict:
        """Whether the server is up, its version, embedder and gallery size; 503 while its gallery cannot be
        served (made by another model than the server was started with)."""
        return _health(store, live.state)

    @app.post("/api/identify", responses=UPLOADS)
    async def identify(request: Request, photo: UploadFile = File(...), top: int = Form(3)) -> dict:
        """Every face in the photo, numbered left to right, named or 'unknown'."""
        await _one_each(request, "photo", "top")
        if not 1 <= top <= 20:
            raise KeyfaceError("top must be between 1 and 20")
        name, data = _upload_name(photo), await photo.read()
        gallery = store.gallery
        try:
            index = await store.run_async(lambda: live.pick(gallery.search_index()))
        except EmptyGalleryError:  # said without the gallery's place on the server
            raise EmptyGalleryError("the gallery is empty: enrol people first") from None
        # decoded and identified in one hop to a worker thread; the index is read there, the gallery is not
        faces = await _in_thread(lambda: gallery.identify(decode_image_bytes(data, name), top, index))
        # already plain JSON: handed to the client as it is, without FastAPI encoding it again
        return JSONResponse(photo_json(name, faces, threshold=round(gallery.identify_threshold(), 4)))

    @app.post("/api/verify", responses=UPLOADS)
    async def verify(request: Request, photo_a: UploadFile = File(...), photo_b: UploadFile = File(...),
                     largest_face: bool = Form(False)) -> dict:
        """Whether two photos (one face each, or the largest face of each with largest_face) show the same
        person."""
        await _one_each(request, "photo_a", "photo_b", "largest_face")
        rec = store.gallery.recogniser
        chosen = rec.taking("largest" if largest_face else rec.several_faces)
        names = [_upload_name(photo_a), _upload_name(photo_b)]
        if names[0] == names[1]:  # an error must say which of the two it is about
            names = [f"photo_a ({names[0]})", f"photo_b ({names[1]})"]
        faces = [await _in_thread(chosen.single_face, await _photo(upload, name), name)
                 for upload, name in zip((photo_a, photo_b), names)]
        same, distance = chosen.same_person(*faces)
        return verify_json(same, distance, rec.threshold)




def _health(store: GalleryThread, search: str):
    """The server's state: up, its version, embedder and gallery size; 503 while its gallery cannot be served."""
    try:
        people = store.run(lambda: store.gallery.people())
    except OtherModelError as exc:  # up, but every gallery route would refuse: not ready, and why
        return JSONResponse({"status": "unusable", "version": keyface_version(),
                             "error": _said(exc, store.gallery.path)}, status_code=503)
    rec = store.gallery.recogniser
    return {"status": "ok", "version": keyface_version(), "embedder": rec.embedder.name,
            "model": rec.embedder.version, "people": len(people), "photos": sum(people.values()), "search": search}


def _people_routes(app: FastAPI, store: GalleryThread) -> None:
    """The JSON API's people: list, enrol, thumbnail, rename, remove."""
    @app.get("/api/people")
    def people(offset: int = Query(0, ge=0), limit: int | None = Query(None, ge=1, le=1000)) -> list[dict]:
        """Everyone enrolled, by name, with their number of photos; `offset` and `limit` give one page of them."""
        everyone = list(store.run(lambda: store.gallery.people()).items())  # sorted by name: pages are stable
        return people_json(everyone[offset:] if limit is None else everyone[offset:offset + limit])

    @app.post("/api/people", status_code=201, responses=ENROLLED)
    async def enrol(request: Request, response: Response, name: str = Form(...),
                    photos: list[UploadFile] = File(...), largest_face: bool = Form(False)) -> dict:
        """Enrol one person's photos (one face each, or the largest face of each with largest_face) in one
        transaction: 201 when photos were added, 200 when none was (errors, and already_enrolled, say why)."""
        await _one_each(request, "name", "largest_face")
        person = check_name(name)
        decoded, errors = [], []  # errors: (the upload's place, its line), said in the order uploaded
        for k, upload in enumerate(photos):
            try:
                decoded.append((k, *await _photo_and_hash(upload)))
            except KeyfaceError as exc:
                errors.append((k, str(exc)))
        found = await _in_thread(store.gallery.prepare, person, [rgb for _, _, rgb, _ in decoded], largest_face,
                                 [n for _, n, _, _ in decoded])
        errors += [(k, _said(p.error, store.gallery.path)) for (k, *_), p in zip(decoded, found) if p.error]
        ready = [(n, replace(p.enrolment, sha256=sha)) for (_, n, _, sha), p in zip(decoded, found) if not p.error]
        first = next((p for p in found if not p.error), None)  # the thumbnail is made here, not on the gallery's thread
        thumbnail = None if first is None else first.thumbnail
        added, refused = await store.run_async(store.gallery.store_enrolments, person, ready, thumbnail)
        response.status_code = 201 if added else 200  # nothing added (each photo's error says why): nothing made
        return {"person": person, "added": added, "already_enrolled": len(ready) - added - len(refused),
                "errors": [line for _, line in sorted(errors, key=lambda e: e[0])] + [str(e) for e in refused]}

    @app.get("/api/people/{name}/thumbnail", responses=PEOPLE)
    def person_thumbnail(name: str) -> Response:
        """A small JPEG of the person's first enrolled face."""
        jpeg = store.run(lambda: store.gallery.thumbnail(name))
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.patch("/api/people/{name}", responses=PEOPLE)
    def rename(name: str, body: Rename) -> dict:
        """Rename a person: the body is {"name": "New Name"}."""
        old, new = check_name(name, existing=True), check_name(body.name)
        store.run(lambda: store.gallery.rename(old, new))
        return {"person": new, "was": old}

    @app.delete("/api/people/{name}", responses=PEOPLE)
    def remove(name: str) -> dict:
        """Remove a person and their photos."""
        person = check_name(name, existing=True)
        return {"person": person, "photos_removed": store.run(lambda: store.gallery.remove(person))}


def _said(error: KeyfaceError, gallery: Path | str) -> str:
    """An error's line as a client reads it: the server's file paths and database are not the client's business,
    several faces are taken with the largest_face field, and a gallery made by another model than the server
    was started with is mended by a restart."""
    text = str(error).replace(shown_location(gallery), "the gallery")
    if isinstance(error, SeveralFacesError):
        return f"{text} (send largest_face=true)"
    if not isinstance(error, OtherModelError) or (error.made == error.wanted and not error.precision):
        return text  # (another version of the same model file: only a reindex mends it)
    flag = f"--precision {error.precision}" if error.precision else f"--embedder {error.made}"
    return f"{text.split('; ')[0]}: restart `keyface serve` with {flag}, or without --embedder and --precision"


async def _in_thread(fn, *args):
    """Run blocking network work on the server's worker threads."""
    from starlette.concurrency import run_in_threadpool
    return await run_in_threadpool(fn, *args)


def build_app(embedder: str | None, detector: str, models, gallery, token: str, tokens_for_reads: bool,
              max_upload_bytes: int, cors_origins: tuple[str, ...] = (), precision: str | None = None,
              min_face: float | None = None):
    """The application. It embeds with `embedder` in `precision` where either is asked, else with the gallery's
    own; a gallery not made yet gets the default embedder's until one made elsewhere in the meantime says
    otherwise (its own is then loaded)."""
    import cv2
    from keyface.recognition.facade import embedder_for, made_by
    _one_tensorflow_thread()
    cv2.setNumThreads(1)
    location = gallery if is_database_uri(gallery) else Path(gallery)
    loader = _serving_loader(models, detector, min_face)
    asked = loader(*embedder_for(embedder, precision, made_by(location))) if embedder or precision else None
    return create_app(asked, ServeConfig(location, token, tokens_for_reads, max_upload_bytes, cors_origins), loader)


def _serving_loader(models, detector: str, min_face: float | None):
    """How the server loads a recogniser: once for each embedder and precision, embedding batched across
    requests."""
    from keyface.recognition.facade import MadeOnce, build
    from keyface.recognition.server.batching import BatchingEmbedder
    from keyface.runtime import networks as runtime

    def served(name: str, precision: str | None):
        # Concurrent requests keep the cores busy finding faces: one thread each for the detector and OpenCV.
        # The keypoint and embedding networks get every core: embedding passes run one at a time (batched), and
        # with one thread that pass was the server's bottleneck (measured: 57 -> 75 identify/s, 20 -> 13 ms alone).
        runtime.set_threads(os.cpu_count() or 1)
        try:
            made = build(name, models, detector=detector, precision=precision, min_face=min_face)
        finally:
            runtime.set_threads(1)  # networks made later (the detector's, on first use): one thread
        made.embedder = BatchingEmbedder(made.embedder)
        return made
    return MadeOnce(served)


def _one_tensorflow_thread() -> None:
    """One TensorFlow thread per op, without importing TensorFlow (~400 MB) for a pipeline that runs in LiteRT:
    set now if it is loaded, else by the variable it reads when a Keras embedder loads it."""
    if "tensorflow" not in sys.modules:
        os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
        return
    try:
        sys.modules["tensorflow"].config.threading.set_intra_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already running in this process (a test): keep its setting
        pass
