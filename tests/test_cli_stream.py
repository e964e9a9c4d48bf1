"""Output as it happens: results per photo as soon as each is done, JSON Lines, faces numbered left to
right, annotated copies that never collide, and a stderr with keyface's messages only."""
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from keyface.recognition.cli.main import main
from tests.badimages import two_face_photo
from tests.test_cli_gallery import run

NOISE = ("absl", "cuda", "cuinit", "tensorflow", "onednn", "warning: all log messages", "i0000", "e0000", "w0000",
         "xla", "keras", "traceback")


def test_stderr_carries_only_keyfaces_messages(tmp_path, youtube_sample, models):
    """Even on a first run, which converts the networks for LiteRT with TensorFlow's converter."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0",  # whatever the environment asks for
           "XDG_DATA_HOME": str(tmp_path / "fresh-home")}  # nothing converted or cached yet
    env.pop("CUDA_VISIBLE_DEVICES", None)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(youtube_sample[0][0], photos / "a.jpg")
    (photos / "notes.txt").write_text("skipped")
    done = subprocess.run([sys.executable, "-m", "keyface.recognition.cli.main", "embed", str(photos), *models],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("keyface: ") and "1 file(s) skipped" in line for line in lines), lines  # notes.txt
    assert any(line.startswith("keyface: converting kp.keras for LiteRT") for line in lines), lines
    assert all(line.startswith("keyface") for line in lines), lines
    ours = [line for line in lines if not line.startswith("keyface: converting kp.keras")]  # names a .keras file
    assert not [line for line in ours if any(word in line.lower() for word in NOISE)]
    record = json.loads(done.stdout)
    assert record["photo"].endswith("a.jpg") and record["faces"][0]["face"] == 1


INFO = b"I0000 00:00:1732900000.123456   4242 cpu_feature_guard.cc:210] This TensorFlow binary is optimized"
WARN = b"W0000 00:00:1732900000.123456   4242 gpu_device.cc:2344] Cannot dlopen some GPU libraries."
OLD_INFO = b"2024-11-29 22:00:00.123456: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on."
ERROR = b"E0000 00:00:1732900000.123456   4242 cuda_driver.cc:1000] failed to allocate 2.00G: CUDA_ERROR_OUT_OF_MEMORY"
FATAL = b"F0000 00:00:1732900000.123456   4242 tensor_shape.cc:50] Check failed: d >= 0 (-1 vs. 0)"
OLD_ERROR = b"2024-11-29 22:00:00.123456: E tensorflow/core/common_runtime/bfc_allocator.cc:1] out of memory"


def test_native_filter_drops_info_and_warning_lines_but_keeps_errors():
    from keyface.recognition.cli.main import filter_native
    data = b"\n".join([INFO, ERROR, WARN, FATAL, OLD_INFO, OLD_ERROR, b"plain text", b"WARNING: All log messages "
                       b"before absl::InitializeLog() is called are written to STDERR",
                       b"WARNING clustering 8 points to 5 centroids: please provide at least 195 training points",
                       b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: "
                       b"FLOAT32", b"unfinished"])
    kept, pending = filter_native(data)
    assert kept == b"\n".join([ERROR, FATAL, OLD_ERROR, b"plain text"]) + b"\n" and pending == b"unfinished"


# A process that starts keyface's stderr filter the way `keyface` does, then writes as TensorFlow's C++ would
# (to file descriptor 2, bypassing Python), as keyface would (sys.stderr), and as a child process would.
FILTERED = """
import os, subprocess, sys
from keyface.recognition.cli.main import filter_native_stderr
filter_native_stderr()
assert not os.get_inheritable(2)
for line in sys.argv[1:]:
    os.write(2, line.encode() + b"\\n")
sys.stderr.write("keyface: a note of our own")
sys.stderr.write(" in two writes\\n")
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"], stdout=subprocess.DEVNULL,
                 stdin=subprocess.DEVNULL, start_new_session=True)
"""


def test_native_errors_reach_stderr_and_exit_does_not_wait_for_children():
    import time
    lines = [line.decode() for line in (INFO, ERROR, WARN, FATAL, OLD_INFO, OLD_ERROR)]
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", FILTERED, *lines], capture_output=True, text=True, timeout=60)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    got = done.stderr.splitlines()
    assert "keyface: a note of our own in two writes" in got
    assert [line for line in got if not line.startswith("keyface")] == [lines[1], lines[3], lines[5]]
    assert took < 1.8  # the child holds no copy of the pipe: exit does not wait out the 2 s join


def test_forwarding_survives_a_closed_stderr():
    """EPIPE on the real stderr must not kill the forwarding thread: it keeps draining, writers never block."""
    import threading
    from keyface.recognition.cli.main import _forward
    out_read, out_write = os.pipe()
    os.close(out_read)  # the real stderr's reader is gone: every write fails with EPIPE
    read_end, write_end = os.pipe()
    thread = threading.Thread(target=_forward, args=(read_end, out_write), daemon=True)
    thread.start()

    failed = []

    def native_writer():  # 4 MiB, far more than a pipe buffers: every write must go through, none block or fail
        try:
            for _ in range(64):
                os.write(write_end, (ERROR + b"\n") * 512)
        except OSError as exc:
            failed.append(exc)
        os.close(write_end)
    writer = threading.Thread(target=native_writer, daemon=True)
    writer.start()
    writer.join(timeout=20)
    assert not writer.is_alive() and failed == [], failed
    thread.join(timeout=10)
    os.close(out_write)
    assert not thread.is_alive()


def test_json_lines_are_compact_and_rounded(tmp_path, youtube_sample, models, capsys):
    photo, _ = two_face_photo(tmp_path, [youtube_sample[0][0], youtube_sample[2][0]])
    code, out, _ = run(["embed", photo, youtube_sample[1][0], *models], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and all(" " not in line.replace(str(photo), "") for line in lines)
    first = json.loads(lines[0])
    faces = first["faces"]
    assert [f["face"] for f in faces] == [1, 2] and faces[0]["box"][0] < faces[1]["box"][0]
    for f in faces:
        assert all(round(v, 1) == v for v in f["box"]) and all(round(v, 1) == v for p in f["keypoints"] for v in p)
        assert all(round(v, 6) == v for v in f["embedding"])


def test_identify_numbers_faces_left_to_right_in_text_json_and_pictures(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)
    photo, _ = two_face_photo(tmp_path, [youtube_sample[2][0], youtube_sample[0][0]])
    code, out, _ = run(["identify", photo, "--gallery", db, "--threshold", "2", *models], capsys)
    assert code == 0 and " face 1: " in out and " face 2: " in out
    code, out, _ = run(["identify", photo, "--gallery", db, "--threshold", "2", "--json", *models], capsys)
    record = json.loads(out)
    assert [f["face"] for f in record["faces"]] == [1, 2] and record["threshold"] == 2
    assert record["faces"][0]["box"][0] < record["faces"][1]["box"][0]
    assert all(round(m["distance"], 4) == m["distance"] for f in record["faces"] for m in f["matches"])



def test_a_photo_without_a_face_fails_alike_in_identify_embed_and_keypoints(tmp_path, youtube_sample, models, capsys):
    """The JSON help promises: a photo that failed has "error"; and each command exits 2 for it."""
    from PIL import Image
    wall = tmp_path / "wall.png"
    Image.new("RGB", (200, 160), (128, 128, 128)).save(wall)
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)
    for argv in (["identify", wall, "--gallery", db, "--threshold", "2", "--json", *models], ["embed", wall, *models],
                 ["keypoints", wall, "--json", "--model", models[1]]):
        code, out, err = run(argv, capsys)
        assert out, (argv, err)
        record = json.loads(out)
        assert code == 2 and record["error"] == f"{wall}: no face found" and record["faces"] == [], argv
        assert err.count("no face found") == 1, argv

def test_identify_prints_each_photo_as_soon_as_it_is_done(tmp_path, youtube_sample, models, capsys, monkeypatch):
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)
    from keyface.recognition.core.pipeline import Recogniser
    real, printed = Recogniser.identify, []

    def identify(self, *args, **kwargs):
        printed.append(capsys.readouterr().out.count("\n"))  # lines out before this photo starts
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Recogniser, "identify", identify)
    photos = [p for p, _ in youtube_sample[:3]]
    code = main([str(a) for a in ["identify", *photos, "--gallery", db, "--json", "--threshold", "2", "--workers", "1",
                                  *models]])
    assert code == 0 and printed == [0, 1, 1]


def test_keypoints_stream_as_they_are_done(tmp_path, youtube_sample, models, capsys, monkeypatch):
    import keyface.keypoints.photos as photos_module
    seen = []

    def fake(photos, *args):
        for photo in photos:
            seen.append(capsys.readouterr().out.count("\n"))
            yield {"photo": photo, "width": 10, "height": 10, "faces": [
                {"face": 1, "box": [1.0, 2.0, 3.0, 4.0], "score": 0.9, "keypoints": [[1.5, 2.5]]}]}, None
    monkeypatch.setattr(photos_module, "iter_predictions", fake)
    code = main(["keypoints", *(str(p) for p, _ in youtube_sample), "--json"])
    assert code == 0 and seen == [0, 1, 1, 1]


def test_annotated_copies_never_overwrite_each_other_or_the_input(tmp_path, youtube_sample, models, capsys):
    db = tmp_path / "g.db"
    run(["enroll", "--name", "Kristen", youtube_sample[0][0], "--gallery", db, *models], capsys)
    for folder in ("one", "two"):  # two IMG_0001.jpg from different folders
        (tmp_path / folder).mkdir()
        shutil.copy(youtube_sample[1][0], tmp_path / folder / "IMG_0001.jpg")
    out = tmp_path / "one"  # annotated copies written beside one of the inputs
    code, _, err = run(["identify", tmp_path / "one", tmp_path / "two", "--gallery", db, "--annotate", out,
                        "--threshold", "2", *models], capsys)
    made = sorted(p.name for p in out.iterdir())
    assert code == 0 and made == ["IMG_0001.jpg", "IMG_0001_identified-2.jpg", "IMG_0001_identified.jpg"]
    assert f"wrote {out / 'IMG_0001_identified-2.jpg'}" in err  # which copy is which photo's is said
    code, lines, _ = run(["identify", tmp_path / "two", "--gallery", db, "--annotate", out, "--json", "--threshold",
                          "2", *models], capsys)
    assert json.loads(lines)["annotated"] == str(out / "IMG_0001_identified-3.jpg")
    assert (out / "IMG_0001.jpg").read_bytes() == youtube_sample[1][0].read_bytes()
    kp_out = tmp_path / "kp"
    for _ in range(2):
        assert run(["keypoints", tmp_path / "one" / "IMG_0001.jpg", tmp_path / "two", "--out", kp_out], capsys)[0] == 0
    assert len(list(kp_out.iterdir())) == 4


def _result(box, name):
    return SimpleNamespace(box=box, keypoints=np.zeros((0, 2)), name=name)  # what draw_identities reads of a Face


def test_labels_stay_inside_the_image_and_apart():
    from keyface.recognition.core.annotate import draw_identities, label_layout
    size = (200, 150)
    boxes = [(0, 0, 60, 60), (20, 2, 80, 62), (150, 100, 199, 149), (140, 95, 195, 145)]
    labels = label_layout(boxes, [f"{n} a rather long name for a label" for n in range(1, 5)], size)
    for k, label in enumerate(labels):
        x0, y0, x1, y1 = label.rect
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]
        assert label.text.startswith(str(k + 1))  # the full name, or the number it gives way to
        for other in labels[:k]:
            a, b = label.rect, other.rect
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (label, other)
    drawn = draw_identities(np.zeros((150, 200, 3), np.uint8), [_result(b, "Ada") for b in boxes])
    assert drawn.shape == (150, 200, 3) and drawn.any()


@pytest.mark.parametrize("tty", [False, True])
def test_progress_bar_only_on_a_terminal_with_more_than_three_photos(monkeypatch, tty):
    from keyface.recognition.cli.commands import Progress
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty, raising=False)
    with Progress(["a", "b", "c"], "x") as (count, stream):
        assert stream.bar is None and list(count(iter("abc"))) == ["a", "b", "c"]
    with Progress(list("abcd"), "x") as (count, stream):  # the results pass through, counted as handled
        assert (stream.bar is not None) == tty and list(count(x.upper() for x in "abcd")) == list("ABCD")


def test_a_reader_that_goes_away_ends_the_command_with_sigpipes_status(youtube_sample, models):
    """`keyface embed ... | head -c 10`: no traceback, and not 1 (verify's "different people") nor 2 (an error)."""
    photos = [str(photo) for photo, _ in youtube_sample] * 30  # ~150 kB of JSON: more than a pipe holds
    child = subprocess.Popen([sys.executable, "-m", "keyface.recognition.cli.main", "embed", *photos, *models],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(child.stdout.read(10)) == 10
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=300) == 141 and "Traceback" not in err and "error" not in err, err
