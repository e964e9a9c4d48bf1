"""`keyface serve`: the real server on a loopback port, driven over HTTP (enrol, identify, verify, people,
tokens, limits, hostile input: always a one-line JSON error with a 4xx status)."""
import socket
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

DEMO = Path(__file__).resolve().parent.parent / "recognition" / "demo"
TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(app) -> tuple:
    """uvicorn serving app on a free loopback port, in a thread; (server, thread, base url)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from keyface.recognition.server.app import build_app
    folder = tmp_path_factory.mktemp("serve")
    app = build_app("dlib-resnet", "blazeface", None, folder / "g.db", TOKEN, False, 3_000_000)
    server, thread, url = start(app)
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client, folder / "g.db"
    server.should_exit = True
    thread.join(30)


def photos(person: str) -> list:
    return [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted((DEMO / "gallery" / person).glob("*.jpg"))]


def probe(name: str, field: str = "photo") -> dict:
    path = DEMO / "probes" / name
    return {field: (path.name, path.read_bytes(), "image/jpeg")}


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def one_line_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def test_enrol_identify_verify_rename_remove(served):
    client, gallery = served
    assert client.get("/api/health").json()["status"] == "ok"
    made = client.post("/api/people", data={"name": "Salma Hayek"}, files=photos("Salma Hayek"), headers=AUTH)
    assert made.status_code == 201 and made.json()["added"] == 5 and made.json()["errors"] == []
    made = client.post("/api/people", data={"name": "Condoleezza Rice"}, files=photos("Condoleezza Rice"), headers=AUTH)
    rice = made.json()["added"]
    assert rice + len(made.json()["errors"]) == 5 and all("faces found" in e for e in made.json()["errors"])
    found = client.post("/api/identify", files=probe("Salma_Hayek_0006.jpg")).json()
    assert [f["name"] for f in found["faces"]] == ["Salma Hayek"] and found["faces"][0]["face"] == 1
    assert len(found["faces"][0]["keypoints"]) == 68 and found["faces"][0]["matches"][0]["distance"] < found["threshold"]
    stranger = client.post("/api/identify", files=probe("AJ_Lamas_0001.jpg")).json()
    assert [f["name"] for f in stranger["faces"]] == ["unknown"]
    a, b = probe("Salma_Hayek_0006.jpg", "photo_a"), probe("Salma_Hayek_0007.jpg", "photo_b")
    assert client.post("/api/verify", files={**a, **b}).json()["same"] is True
    thumb = client.get("/api/people/Salma Hayek/thumbnail")
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    assert client.patch("/api/people/Salma Hayek", json={"name": "Salma H"}, headers=AUTH).status_code == 200
    assert client.delete("/api/people/Condoleezza Rice", headers=AUTH).json()["photos_removed"] == rice
    assert client.get("/api/people").json() == [{"name": "Salma H", "photos": 5}]
    from keyface.recognition.core.gallery_check import check_gallery
    assert check_gallery(gallery) == []  # the CLI's integrity check on the file the server writes


def test_changes_without_the_token_are_refused(served):
    client, _ = served
    one_line_error(client.post("/api/people", data={"name": "X Y"}, files=photos("Tom Cruise")), 401)
    one_line_error(client.delete("/api/people/Salma H", headers={"Authorization": "Bearer wrong-token-000000"}), 401)
    one_line_error(client.patch("/api/people/Salma H", json={"name": "Z"}), 401)
    assert client.get("/api/people").status_code == 200  # reads on loopback need none


@pytest.mark.parametrize("name", ["a/b", "", "   ", "x" * 201, "bad\u202ename", "..\\..\\etc", "..", "."])
def test_hostile_names_are_refused(served, name):
    client, _ = served
    status = 422 if name == "" else 400  # an empty form field is a missing one
    one_line_error(client.post("/api/people", data={"name": name}, files=photos("Tom Cruise"), headers=AUTH), status)


def test_an_enrolments_errors_come_in_the_order_the_photos_were_sent(served):
    import io
    from PIL import Image
    client, _ = served
    wall = io.BytesIO()
    Image.new("RGB", (160, 160), (128, 128, 128)).save(wall, "JPEG")
    face = (DEMO / "probes" / "AJ_Lamas_0001.jpg").read_bytes()  # a stranger: enrolled by no other test
    files = [("photos", (name, data, "image/jpeg")) for name, data in (
        ("1-wall.jpg", wall.getvalue()), ("2-text.jpg", b"not a photo"), ("3-face.jpg", face), ("4-wall.jpg", wall.getvalue()))]
    made = client.post("/api/people", data={"name": "Ordered"}, files=files, headers=AUTH).json()
    # decoding refuses 2 before the faces of 1 and 4 are looked for: the answer still lists them as sent
    assert [e.split(":")[0] for e in made["errors"]] == ["1-wall.jpg", "2-text.jpg", "4-wall.jpg"], made
    client.delete("/api/people/Ordered", headers=AUTH)


def test_an_uploads_name_is_said_on_one_line_and_never_as_a_path():
    from types import SimpleNamespace
    from keyface.recognition.server.app import _upload_name
    assert _upload_name(SimpleNamespace(filename="line\nbreak\x1b[31m.jpg")) == "line\\nbreak\\x1b[31m.jpg"
    assert _upload_name(SimpleNamespace(filename="../../etc/passwd")) == "passwd"
    assert _upload_name(SimpleNamespace(filename=None)) == "photo" and _upload_name(SimpleNamespace(filename="Zoë.jpg")) == "Zoë.jpg"


def test_bad_and_oversized_uploads_are_refused(served):
    client, _ = served
    # someone enrolled (or already there, 409), so that the photo is what is refused, not an empty gallery
    assert client.post("/api/people", data={"name": "Tom Cruise"}, files=photos("Tom Cruise"),
                       headers=AUTH).status_code in (200, 201, 409)
    assert "not a readable image" in one_line_error(
        client.post("/api/identify", files={"photo": ("x.jpg", b"GIF89a not really", "image/gif")}), 400)
    one_line_error(client.post("/api/identify", files={"photo": ("big.jpg", b"0" * 3_100_000, "image/jpeg")}), 413)
    one_line_error(client.post("/api/identify"), 422)
    for url, fields in (("/api/identify", {"photo": "a.jpg"}), ("/api/people", {"name": "Ann", "photos": "a.jpg"})):
        said = one_line_error(client.post(url, data=fields, headers=AUTH), 422)  # a file's name sent as text
        assert "expected a file" in said and "UploadFile" not in said and "<class" not in said
    probe_file = probe("Tom_Cruise_0006.jpg")["photo"]
    said = {  # each in keyface's words: the field, then what it should have been
        "name: expected a text value, not a file": client.post(
            "/api/people", files={"photos": probe_file, "name": probe_file}, headers=AUTH),
        "largest_face: expected true or false": client.post(
            "/api/verify", files={"photo_a": probe_file, "photo_b": probe_file}, data={"largest_face": "maybe"}),
        "top: expected a whole number": client.post("/api/identify", files={"photo": probe_file}, data={"top": "x"}),
        "the request's body: expected a JSON object": client.patch("/api/people/Tom Cruise", data={"name": "T"},
                                                                   headers=AUTH),
        "the request's body: not valid JSON": client.patch(
            "/api/people/Tom Cruise", content=b"{name", headers={**AUTH, "Content-Type": "application/json"}),
        "name: missing": client.patch("/api/people/Tom Cruise", json={"nom": "T"}, headers=AUTH),
        "photo: missing (the request's body is not a form: send the fields as multipart/form-data": client.post(
            "/api/identify", content=probe_file[1], headers={"Content-Type": "image/jpeg"}),
        # a field sent twice is refused, not half read
        "photo: sent 2 times; a request takes one": client.post("/api/identify", files=[("photo", probe_file)] * 2),
        "photo_b: sent 2 times": client.post("/api/verify", files=[("photo_a", probe_file), ("photo_b", probe_file),
                                                                   ("photo_b", probe_file)]),
        "top: sent 2 times": client.post("/api/identify", files={"photo": probe_file}, data={"top": ["1", "2"]}),
        "name: sent 2 times": client.post("/api/people", files={"photos": probe_file}, data={"name": ["A", "B"]},
                                          headers=AUTH),
        "largest_face: sent 2 times": client.post("/api/verify", files={"photo_a": probe_file, "photo_b": probe_file},
                                                  data={"largest_face": ["true", "false"]}),
    }
    for start, answer in said.items():
        assert one_line_error(answer, 422).startswith(start), (start, answer.text)
    unreadable = {  # bodies the framework cannot parse at all, in keyface's words too
        "the request's body: not a readable multipart form (Missing boundary in multipart)": client.post(
            "/api/identify", content=b"--x\r\nabc", headers={"Content-Type": "multipart/form-data"}),
        "the request's body: not readable as JSON: send {\"name\": \"New Name\"} as UTF-8": client.patch(
            "/api/people/Tom Cruise", content=b'{"name": "\xff\xfe"}', headers={**AUTH, "Content-Type": "application/json"}),
    }
    for start, answer in unreadable.items():
        assert one_line_error(answer, 400).startswith(start), (start, answer.text)
    one_line_error(client.get("/api/people/Nobody Here/thumbnail"), 404)
    one_line_error(client.delete("/api/people/Nobody Here", headers=AUTH), 404)
    one_line_error(client.get("/static/..%2F..%2Fsetup.cfg"), 404)  # escaped, so the client cannot tidy it away

    def chunks():  # a body that does not say its size up front
        yield b"--x\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.jpg\"\r\n\r\n"
        for _ in range(40):
            yield b"0" * 100_000
    refused = client.post("/api/identify", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert "upload too large" in one_line_error(refused, 413)


def test_other_host_names_are_refused_on_loopback(served):
    client, _ = served  # a page on another name resolving to 127.0.0.1 (DNS rebinding) must not read the gallery
    assert client.get("/api/people", headers={"Host": "evil.example:80"}).status_code == 400
    assert client.get("/api/people", headers={"Host": "localhost"}).status_code == 200


def test_beyond_loopback_every_api_request_needs_the_token(tmp_path):
    from keyface.recognition.server.app import build_app
    app = build_app("dlib-resnet", "blazeface", None, tmp_path / "g.db", TOKEN, True, 3_000_000)
    server, thread, url = start(app)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            one_line_error(client.get("/api/people"), 401)
            assert client.get("/api/people", headers=AUTH).json() == []
            assert client.get("/").status_code == 200  # the page holds no data
            # nor does the API's description: a browser elsewhere can read the docs, and they take the token
            assert client.get("/api/docs").status_code == 200
            assert client.get("/api/openapi.json").json()["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
            origin = {"Origin": "https://elsewhere.example"}
            assert "access-control-allow-origin" not in client.get("/api/health", headers={**AUTH, **origin}).headers
    finally:
        server.should_exit = True
        thread.join(30)


def test_cors_only_for_the_origins_given(tmp_path):
    from keyface.recognition.server.app import build_app
    allowed = "https://app.example"
    app = build_app("dlib-resnet", "blazeface", None, tmp_path / "g.db", TOKEN, True, 3_000_000, (allowed,))
    server, thread, url = start(app)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            preflight = client.options("/api/people", headers={"Origin": allowed, "Access-Control-Request-Method": "POST",
                                                               "Access-Control-Request-Headers": "authorization"})
            assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == allowed
            refused = client.get("/api/people", headers={"Origin": allowed})  # no token: refused, readably
            assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == allowed
            other = client.get("/api/people", headers={**AUTH, "Origin": "https://other.example"})
            assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_token_file_is_made_owner_only_and_a_readable_one_is_refused(tmp_path):
    from keyface.data.errors import KeyfaceError
    from keyface.recognition.server.tokens import load_or_create_token
    path = tmp_path / "serve" / "token"
    token = load_or_create_token(path)
    assert len(token) >= 32 and (path.stat().st_mode & 0o777) == 0o600 and load_or_create_token(path) == token
    path.chmod(0o644)
    with pytest.raises(KeyfaceError, match="can be read by others"):
        load_or_create_token(path)


def test_a_photo_enrolled_from_the_command_line_is_the_same_photo_here_and_has_a_thumbnail(served):
    from keyface.recognition.cli.main import main
    client, gallery = served
    photo = sorted((DEMO / "gallery" / "Tom Cruise").glob("*.jpg"))[0]
    assert main(["enroll", "--name", "Tom Cruise", str(photo), "--gallery", str(gallery)]) == 0
    thumb = client.get("/api/people/Tom Cruise/thumbnail")
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"  # made by the command line's enrolment
    again = client.post("/api/people", data={"name": "Someone Else"}, headers=AUTH,
                        files=[("photos", (photo.name, photo.read_bytes(), "image/jpeg"))])
    assert again.json()["added"] == 0 and "already enrolled as 'Tom Cruise'" in again.json()["errors"][0]


@pytest.fixture
def fresh(tmp_path):
    """A server over an empty gallery of its own, so that a test can count on what is in it; its client."""
    from keyface.recognition.server.app import build_app
    server, thread, url = start(build_app("dlib-resnet", "blazeface", None, tmp_path / "g.db", TOKEN, False, 3_000_000))
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(30)


def test_people_pages_with_offset_and_limit_and_by_default_lists_everyone(fresh):
    client = fresh
    for person in ("Tom Cruise", "Gordon Brown", "Salma Hayek"):
        made = client.post("/api/people", data={"name": person}, files=photos(person)[:1], headers=AUTH)
        assert made.status_code == 201 and made.json()["added"] == 1, made.text
    everyone = [{"name": n, "photos": 1} for n in ("Gordon Brown", "Salma Hayek", "Tom Cruise")]
    assert client.get("/api/people").json() == everyone  # unchanged without paging: a list, by name
    assert client.get("/api/people", params={"limit": 2}).json() == everyone[:2]
    assert client.get("/api/people", params={"offset": 1}).json() == everyone[1:]
    assert client.get("/api/people", params={"offset": 1, "limit": 1}).json() == everyone[1:2]
    assert client.get("/api/people", params={"offset": 3, "limit": 1000}).json() == []
    for bad, said in (({"offset": -1}, "offset: at least 0"), ({"limit": 0}, "limit: at least 1"),
                      ({"limit": 1001}, "limit: at most 1000"), ({"offset": "x"}, "offset: expected a whole number"),
                      ({"limit": "all"}, "limit: expected a whole number")):
        assert one_line_error(client.get("/api/people", params=bad), 422) == said


def test_photos_already_this_persons_are_counted_not_dropped_unsaid(fresh):
    client = fresh
    first, second = photos("Tom Cruise")[:2]
    made = client.post("/api/people", data={"name": "Tom Cruise"}, files=[first], headers=AUTH)
    assert made.status_code == 201 and made.json()["already_enrolled"] == 0
    again = client.post("/api/people", data={"name": "Tom Cruise"}, files=[first, first, second], headers=AUTH)
    assert again.status_code == 201 and again.json() == {"person": "Tom Cruise", "added": 1, "already_enrolled": 2,
                                                         "errors": []}


def test_enrolling_with_the_largest_face_takes_photos_with_several_faces(fresh, caplog):
    client = fresh
    largest = client.post("/api/people", data={"name": "Condoleezza Rice", "largest_face": "true"},
                          files=photos("Condoleezza Rice"), headers=AUTH)
    assert largest.status_code == 201 and largest.json() == {"person": "Condoleezza Rice", "added": 5,
                                                             "already_enrolled": 0, "errors": []}
    # the choice was this request's alone: the server still refuses several faces by default
    again = client.post("/api/people", data={"name": "Rice Again"}, files=photos("Condoleezza Rice"), headers=AUTH)
    assert again.status_code == 200  # nothing added: nothing created
    assert again.json()["added"] == 0 and any("faces found" in e for e in again.json()["errors"])
    crowded = next(e.split(":")[0] for e in again.json()["errors"] if "faces found" in e)  # named by its file
    pair = {"photo_a": photos("Condoleezza Rice")[0][1], "photo_b": probe("Salma_Hayek_0006.jpg")["photo"]}
    pair["photo_a"] = next(f for _, f in photos("Condoleezza Rice") if f[0] == crowded)
    refused = one_line_error(client.post("/api/verify", files=pair), 400)
    assert refused.startswith(f"{crowded}: ") and "faces found" in refused and "image array" not in refused
    assert refused.endswith("(send largest_face=true)")  # the API's way to take the largest face, not a flag's
    assert all(e.endswith("(send largest_face=true)") for e in again.json()["errors"] if "faces found" in e)
    twins = {"photo_a": (crowded, pair["photo_a"][1]), "photo_b": (crowded, pair["photo_a"][1])}  # one name twice
    assert one_line_error(client.post("/api/verify", files=twins), 400).startswith(f"photo_a ({crowded}): ")
    with caplog.at_level("INFO", logger="keyface"):
        taken = client.post("/api/verify", files=pair, data={"largest_face": "true"})
    assert taken.status_code == 200 and taken.json()["same"] is False
    assert f"{crowded}: " in caplog.text and "using the largest" in caplog.text  # the log names the upload too
    assert "image array" not in caplog.text


def test_the_api_docs_work_offline(served):
    client, _ = served
    page = client.get("/api/docs")
    assert page.status_code == 200 and "/api/openapi.json" in page.text
    scripts = [part.split('"')[0] for part in page.text.split('src="')[1:]] + \
              [part.split('"')[0] for part in page.text.split('href="')[1:]]
    assert scripts and all(url.startswith("/static/") for url in scripts if url), scripts  # nothing from a CDN
    for url in filter(None, scripts):
        assert client.get(url).status_code == 200 and len(client.get(url).content) > 10_000
    assert client.get("/static/swagger/index.html").status_code == 404  # a fixed list, not the folder
    paths = client.get("/api/openapi.json").json()["paths"]
    enrol = paths["/api/people"]["post"]["responses"]
    assert {"200", "201", "400", "401", "409", "422"} <= set(enrol) and "no photo added" in enrol["200"]["description"].lower()
    assert "413" not in paths["/api/health"]["get"]["responses"] and "413" in paths["/api/identify"]["post"]["responses"]
    error = paths["/api/identify"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}  # the one-line body every error has


def test_a_server_waiting_for_its_gallery_serves_the_one_made_elsewhere_in_its_own_precision(tmp_path):
    """Started before its gallery is made (no embedder asked), a server takes a gallery that another process then
    makes in float32: it embeds in float32 from then on, instead of refusing it until restarted."""
    import keyface
    from keyface.recognition.server.app import build_app
    db = tmp_path / "g.db"
    server, thread, url = start(build_app(None, "blazeface", None, db, TOKEN, False, 3_000_000))
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            assert client.get("/api/health").json()["model"].endswith("-int8")  # the default's, for now
            with keyface.Gallery(db, keyface.build("dlib-resnet", precision="float32")) as elsewhere:
                assert elsewhere.enrol("Tom Cruise", sorted((DEMO / "gallery" / "Tom Cruise").glob("*.jpg"))[:2])[0] == 2
                made = elsewhere.recogniser.embedder.version
            named = client.post("/api/identify", files=probe("Tom_Cruise_0006.jpg"))
            assert named.status_code == 200 and named.json()["faces"][0]["name"] == "Tom Cruise", named.text
            assert client.get("/api/health").json()["model"] == made and not made.endswith("-int8")
            enrolled = client.post("/api/people", data={"name": "Gordon Brown"}, files=photos("Gordon Brown")[:1],
                                   headers=AUTH)
            assert enrolled.status_code == 201, enrolled.text  # written in the gallery's own precision
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_server_started_in_one_precision_answers_409_for_a_gallery_made_later_in_another(tmp_path):
    """A server asked for int8 keeps int8: a gallery another process then makes in float32 is refused with 409 and
    the restart that mends it, and /api/health says it is up but cannot serve (503), instead of a 400 everywhere."""
    import keyface
    from keyface.recognition.server.app import build_app
    db = tmp_path / "g.db"
    server, thread, url = start(build_app(None, "blazeface", None, db, TOKEN, False, 3_000_000, precision="int8"))
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            assert client.get("/api/health").json()["status"] == "ok"
            with keyface.Gallery(db, keyface.build("dlib-resnet", precision="float32")) as elsewhere:
                assert elsewhere.enrol("Tom Cruise", sorted((DEMO / "gallery" / "Tom Cruise").glob("*.jpg"))[:1])[0] == 1
            said = one_line_error(client.post("/api/identify", files=probe("Tom_Cruise_0006.jpg")), 409)
            assert said.startswith("the gallery was embedded in float32") and "--precision float32" in said, said
            assert str(tmp_path) not in said
            assert one_line_error(client.get("/api/people"), 409) == said
            health = client.get("/api/health")
            assert health.status_code == 503 and health.json()["status"] == "unusable"
            assert health.json()["error"] == said
    finally:
        server.should_exit = True
        thread.join(30)


def test_a_port_in_use_is_said_in_one_line_and_never_announced_as_served(tmp_path, capsys, monkeypatch):
    """It used to print "keyface serving ... at" and only then fail to bind: a script waiting for that line went
    on to talk to whatever held the port."""
    import socket
    from keyface.recognition.cli.main import main
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--gallery", str(tmp_path / "g.db")]) == 2
    said = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port} (in use)" in said and "serving" not in said, said


def test_serving_on_every_address_takes_ipv4_too():
    """--host :: is every address, IPv4 included, as uvicorn's own bind made it and as the announced
    http://127.0.0.1:PORT/ needs."""
    import socket
    from keyface.recognition.cli.serve import _bound
    if not socket.has_ipv6 or not socket.has_dualstack_ipv6():
        pytest.skip("no dual-stack IPv6 here")
    with _bound("::", 0) as listening:
        socket.create_connection(("127.0.0.1", listening.getsockname()[1]), timeout=5).close()
