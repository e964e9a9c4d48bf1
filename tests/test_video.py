"""Videos: short clips made of the shipped sample's held-out photos, with every face's truth known; tracks,
names and times through the API and the command line, enrolment from a video, and bad videos."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import keyface
from keyface.data.clips import Actor, ClipSpec, write_clip
from keyface.data.crowd import Source
from keyface.data.images import is_video_file, load_image
from keyface.data.video import Sampling, Video, VideoError
from keyface.recognition.cli.main import main

DEMO = Path(__file__).resolve().parent.parent / "recognition" / "demo"
ADA, BEN, STRANGER = "Salma Hayek", "Gordon Brown", "AJ_Lamas_0001"  # two enrolled people, one stranger


def _source(recogniser, person: str, photo: Path) -> Source:
    faces = recogniser.pipeline.detector.detect(load_image(photo))
    return Source(person, photo, max(faces, key=lambda f: f.size).box)


@pytest.fixture(scope="module")
def recogniser():
    return keyface.load()


@pytest.fixture(scope="module")
def gallery_file(tmp_path_factory, recogniser):
    path = tmp_path_factory.mktemp("gallery") / "demo.db"
    with keyface.Gallery(path, recogniser) as gallery:
        for person in sorted((DEMO / "gallery").iterdir()):
            gallery.enrol(person.name, sorted(person.glob("*.jpg")), largest_face=True)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory, recogniser) -> tuple[Path, ClipSpec]:
    """3 s, 640x480 at 30 frames/s: Ada crosses the frame, Ben stands, a stranger walks in late."""
    ada = _source(recogniser, ADA, DEMO / "probes" / "Salma_Hayek_0006.jpg")
    ben = _source(recogniser, BEN, DEMO / "probes" / "Gordon_Brown_0006.jpg")
    stranger = _source(recogniser, "stranger", DEMO / "probes" / f"{STRANGER}.jpg")
    spec = ClipSpec(640, 480, 30.0, 3.0, (Actor(ada, 0.0, 3.0, (80, 140, 110), (560, 150, 110)),
                                          Actor(ben, 0.4, 2.4, (480, 340, 120), (470, 330, 130)),
                                          Actor(stranger, 1.2, 3.0, (150, 350, 100), (200, 340, 100))))
    path = tmp_path_factory.mktemp("clips") / "walk.mp4"
    write_clip(spec, path, load_image)
    return path, spec


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_clip_has_one_track_a_person_each_named_right_at_the_right_times(clip, gallery_file):
    path, spec = clip
    tracks = sorted(keyface.identify_video(path, gallery_file), key=lambda t: t.first_time)
    assert [t.name for t in tracks] == [ADA, BEN, None]  # the stranger is unknown
    for track, actor in zip(tracks, spec.actors):
        assert abs(track.first_time - actor.enter) <= 0.2 and abs(track.last_time - actor.leave) <= 0.2
        assert track.frames >= 0.8 * (actor.leave - actor.enter) * 15  # 15 frames a second are looked at
    assert tracks[0].to_json()["first"]["frame"] == tracks[0].first_frame


def test_a_face_walking_in_from_the_edge_is_boxed_to_the_frame_in_every_frame(tmp_path, gallery_file, recogniser):
    ada = _source(recogniser, ADA, DEMO / "probes" / "Salma_Hayek_0006.jpg")
    spec = ClipSpec(480, 360, 30.0, 2.0, (Actor(ada, 0.0, 2.0, (35, 180, 130), (300, 180, 130)),))  # half out at first
    truths = write_clip(spec, tmp_path / "edge.mp4", load_image)
    truth_boxes = [box for frame in truths for _, _, box in frame]  # the benchmark's truth is boxed the same way
    assert truth_boxes[0][0] == 0 and all(0 <= b[0] < b[2] <= 480 and 0 <= b[1] < b[3] <= 360 for b in truth_boxes)
    seen = []
    tracks = list(keyface.identify_video(tmp_path / "edge.mp4", gallery_file, every=1,
                                         on_frame=lambda frame, found: seen.extend(box for _, box, _ in found)))
    boxes = seen + [box for t in tracks for box in t.boxes.values()]
    assert tracks and min(b[0] for b in boxes) == 0.0  # the face was cut by the edge, and boxed to it
    assert all(0 <= x0 < x1 <= 480 and 0 <= y0 < y1 <= 360 for x0, y0, x1, y1 in boxes)


def test_a_gallery_identifies_a_video_by_its_path_with_the_frames_asked_for(clip, gallery_file, recogniser):
    path, _ = clip
    with keyface.Gallery(gallery_file, recogniser) as gallery:
        every_frame = list(gallery.identify_video(path, sampling=Sampling(every=1)))
        with Video(path, Sampling(every=1)) as video:  # the same as a video opened by the caller
            opened = list(gallery.identify_video(video))
        with pytest.raises(keyface.KeyfaceError, match="camera index, not an image"):
            next(gallery.identify_video(load_image(DEMO / "probes" / "Salma_Hayek_0006.jpg")))
    assert sorted(t.name or "" for t in every_frame) == sorted(["", BEN, ADA])  # "": the stranger, unknown
    assert [(t.name, t.frames) for t in every_frame] == [(t.name, t.frames) for t in opened]
    assert max(t.frames for t in every_frame) >= 0.8 * 3.0 * 30  # every frame of the 30 a second looked at


def test_identify_prints_a_line_per_track_and_writes_an_annotated_copy(clip, gallery_file, tmp_path, capsys):
    path, spec = clip
    code, out, err = run(["identify", path, "--gallery", gallery_file, "--json", "--out", tmp_path / "a.mp4"], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and sorted(line["name"] for line in lines) == sorted([ADA, BEN, "unknown"])
    assert all(line["video"] == str(path) and line["last"]["time"] >= line["first"]["time"] for line in lines)
    assert oct((tmp_path / "a.mp4").stat().st_mode & 0o777) == "0o600"  # faces and names: the owner's only
    copy = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert int(copy.get(cv2.CAP_PROP_FRAME_COUNT)) == int(spec.seconds * spec.fps) == 90
    assert copy.read()[0] and (copy.get(cv2.CAP_PROP_FRAME_WIDTH), copy.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 480)
    code, _, err = run(["identify", path, "--gallery", gallery_file, "--out", tmp_path / "a.mp4"], capsys)
    assert code == 2 and "exists" in err  # an annotated copy never replaces a file


def test_a_video_copy_that_cannot_be_written_is_refused_before_the_video_is_read(clip, tmp_path, capsys):
    path, _ = clip
    photo = next((Path(__file__).resolve().parent.parent / "recognition" / "demo" / "probes").glob("*.jpg"))
    missing = tmp_path / "never-made.db"  # refused before the gallery is opened, so before any model loads
    for out, said in ((tmp_path / "noext", "needs a video file's name, such as noext.mp4"),
                      (tmp_path / "no" / "x.mp4", "no such folder"), (tmp_path, "needs a video file's name")):
        code, stdout, err = run(["identify", path, "--gallery", missing, "--out", out], capsys)
        assert code == 2 and said in err and stdout == "" and "Traceback" not in err and "cv2" not in err, err
    code, _, err = run(["identify", photo, "--gallery", missing, "--out", tmp_path / "a.mp4"], capsys)
    assert code == 2 and "--annotate" in err  # --out is a video's: it was ignored for photos
    code, _, err = run(["identify", path, path, "--gallery", missing, "--out", tmp_path / "b.mp4"], capsys)
    assert code == 2 and "one video" in err
    code, _, err = run(["identify", path, "--gallery", missing, "--annotate", tmp_path / "d"], capsys)
    assert code == 2 and "--out FILE.mp4" in err  # --annotate is the photos': it did nothing for a video


def test_every_and_start_end_choose_the_frames_looked_at(clip, gallery_file, capsys):
    path, _ = clip
    code, out, _ = run(["identify", path, "--gallery", gallery_file, "--json", "--every", "6"], capsys)
    every = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and every and all(t["first"]["frame"] % 6 == 0 and t["frames"] <= 16 for t in every)
    code, out, _ = run(["identify", path, "--gallery", gallery_file, "--json", "--start", "1", "--end", "2"], capsys)
    part = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and part and all(1.0 <= t["first"]["time"] and t["last"]["time"] <= 2.0 for t in part)
    assert {t["name"] for t in part} == {ADA, BEN, "unknown"}  # the stranger walks in at 1.2 s
    frames = [f.index for f in Video(path, Sampling(fps=10, start=1.0, end=2.0)).frames()]
    assert frames == list(range(30, 61, 3))


def test_enrol_from_a_video_takes_the_best_distinct_frames_of_its_one_person(clip, recogniser, tmp_path, capsys):
    path, spec = clip
    alone = tmp_path / "alone.mp4"
    write_clip(ClipSpec(640, 480, 30.0, 3.0, (spec.actors[0],)), alone, load_image)
    db = tmp_path / "g.db"
    code, out, err = run(["enroll", "--name", "Ada", alone, "--gallery", db, "--count", "3"], capsys)
    assert code == 0 and "Ada: 3 photo(s) added" in out
    code, out, err = run(["enroll", "--name", "Ben", path, "--gallery", db], capsys)
    assert code == 2 and "3 people seen" in err and "--largest-face" in err
    with keyface.Gallery(db) as gallery:
        assert gallery.people() == {"Ada": 3}
        assert gallery.identify(DEMO / "probes" / "Salma_Hayek_0006.jpg")[0].name == "Ada"


def test_a_file_is_a_video_by_its_content(clip, tmp_path):
    path, _ = clip
    renamed = tmp_path / "holiday.jpg"
    renamed.write_bytes(path.read_bytes())
    assert is_video_file(renamed) and not is_video_file(DEMO / "probes" / "Abba_Eban_0001.jpg")


def test_bad_videos_get_one_line_and_exit_2(clip, gallery_file, tmp_path, capsys):
    path, _ = clip
    data = path.read_bytes()
    cases = {"truncated.mp4": data[: len(data) // 3], "empty.mp4": b"",
             "no-stream.mp4": data[:32] + bytes(4000)}  # a container's header and nothing a decoder can use
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        code, out, err = run(["identify", tmp_path / name, "--gallery", gallery_file], capsys)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (name, err)
    code, _, err = run(["identify", "--camera", "57", "--gallery", gallery_file], capsys)
    assert code == 2 and "camera 57" in err and err.count("\n") <= 2
    code, _, err = run(["identify", "--camera", "57", path, "--gallery", gallery_file], capsys)
    assert code == 2 and "give one or the other" in err  # a camera runs until stopped: the file would never be read
    code, _, err = run(["identify", path, "--gallery", gallery_file, "--every", "2", "--fps", "5"], capsys)
    assert code == 2 and "not both" in err


def test_a_sighting_cut_by_the_frame_edge_counts_as_part_of_a_face(recogniser):
    """A face a third out of the frame: its box stops at the edge, but its quality is judged on the detector's
    whole box, so a whole sighting of it is preferred (to enrol, to name a track, for its thumbnail)."""
    from keyface.data.video import Frame
    from keyface.recognition.core import video
    from keyface.recognition.core.tracking import Track, Tracker, sighting_quality
    rgb = np.ascontiguousarray(load_image(DEMO / "probes" / "Tom_Cruise_0006.jpg")[:, 95:])
    (detected,) = recogniser.pipeline.detector.detect(rgb)
    (face,) = recogniser.pipeline.faces_at(rgb, [detected])
    assert detected.box[0] < 0 == face.box[0]
    track, vector = Track(1), np.eye(128, dtype=np.float32)[0]
    video._sample(Frame(0, 0.0, rgb), track, face, vector, Tracker(0.05, 0.3), video.VideoRun(recogniser), detected.box)
    whole, clipped = sighting_quality(rgb, detected.box, face.keypoints), sighting_quality(rgb, face.box, face.keypoints)
    assert track.samples[0].quality == pytest.approx(whole) and whole < 0.9 * clipped


def test_a_truncated_video_says_where_its_frames_end(tmp_path, caplog):
    writer = cv2.VideoWriter(str(tmp_path / "whole.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    for i in range(60):
        writer.write(np.full((120, 160, 3), i * 4, np.uint8))
    writer.release()
    data = (tmp_path / "whole.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])  # an AVI's header counts 60 frames; half are there
    seen = {}
    for name in ("whole.avi", "cut.avi"):
        caplog.clear()
        with Video(tmp_path / name, Sampling(every=1)) as video:
            seen[name] = sum(1 for _ in video.frames())
        said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert (name == "cut.avi") == any("truncated" in line and "of 60" in line for line in said), (name, said)
    assert seen["whole.avi"] == 60 and 10 < seen["cut.avi"] < 50, seen


def test_a_video_that_gives_no_track_is_its_own_error_and_the_other_files_go_on(clip, gallery_file, tmp_path, capsys):
    path, _ = clip
    (tmp_path / "broken.mp4").write_bytes(path.read_bytes()[:32] + bytes(4000))
    grey = cv2.VideoWriter(str(tmp_path / "grey.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (160, 120))
    for _ in range(20):
        grey.write(np.full((120, 160, 3), 128, np.uint8))
    grey.release()
    code, out, err = run(["identify", tmp_path / "broken.mp4", tmp_path / "grey.mp4", path, "--gallery", gallery_file,
                          "--json"], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and [line["video"] for line in lines[:2]] == [str(tmp_path / n) for n in ("broken.mp4", "grey.mp4")]
    assert "cannot be opened" in lines[0]["error"] and "no face found (a face counts once seen in 5" in lines[1]["error"]
    assert len(lines) == 5 and all("name" in line for line in lines[2:])  # the good clip's three tracks still came
    code, out, err = run(["embed", tmp_path / "grey.mp4"], capsys)
    assert code == 2 and json.loads(out)["error"] == f"{tmp_path / 'grey.mp4'}: no face found (a face counts once seen " \
        "in 5 of the frames looked at)" and err.startswith("keyface: error: ")
    code, _, err = run(["identify", path, "--gallery", gallery_file, "--start", "100"], capsys)
    assert code == 2 and "it ends at 3.0 s, before the start asked for (100 s)" in err


def test_a_video_of_frames_too_thin_for_a_face_is_refused(tmp_path):
    strip = tmp_path / "strip.avi"
    writer = cv2.VideoWriter(str(strip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (20000, 10))
    for _ in range(3):
        writer.write(np.full((10, 20000, 3), 128, np.uint8))
    writer.release()
    if not strip.is_file() or strip.stat().st_size == 0:
        pytest.skip("this OpenCV build cannot write a 20000x10 video")
    with pytest.raises(VideoError, match="too small"):
        Video(strip)


def test_ctrl_c_prints_the_tracks_closed_so_far_and_exits_130(tmp_path, recogniser, gallery_file):
    ada = _source(recogniser, ADA, DEMO / "probes" / "Salma_Hayek_0006.jpg")
    long = tmp_path / "long.mp4"
    write_clip(ClipSpec(320, 240, 30.0, 40.0, (Actor(ada, 0.0, 1.0, (100, 120, 90), (120, 120, 90)),)), long, load_image)
    child = subprocess.Popen([sys.executable, "-m", "keyface.recognition.cli.main", "identify", str(long),
                              "--gallery", str(gallery_file), "--every", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    line = child.stdout.readline()  # the first track closes a second after Ada leaves
    assert ADA in line and time.time() < deadline
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "interrupted" in err and "Traceback" not in err


def test_the_keyface_process_says_a_bad_video_in_one_line_without_native_noise(clip, gallery_file, tmp_path):
    path, _ = clip
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(path.read_bytes()[:20000])
    for argv in ([str(truncated)], ["--camera", "57"]):
        done = subprocess.run([sys.executable, "-m", "keyface.recognition.cli.main", "identify", *argv, "--gallery",
                               str(gallery_file)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("keyface: error:"), done.stderr


def test_clip_scoring_counts_right_names_strangers_switches_and_fragments():
    from types import SimpleNamespace
    from keyface.recognition.evaluation.video import ClipScore, score_clip
    box_a, box_b = [0, 0, 100, 100], [300, 0, 400, 100]
    truths = [[(0, "Ada", box_a), (1, "Stranger", box_b)] for _ in range(6)]
    tracks = [SimpleNamespace(id=1, name="Ada", boxes={i: box_a for i in range(0, 3)}),
              SimpleNamespace(id=2, name="Ada", boxes={i: box_a for i in range(3, 6)}),   # Ada again: a fragment
              SimpleNamespace(id=3, name="Ada", boxes={i: box_b for i in range(6)}),      # a stranger named
              SimpleNamespace(id=4, name=None, boxes={0: [700, 700, 800, 800]})]          # following no one
    score = ClipScore()
    score_clip(tracks, truths, {"Ada"}, score)
    row = score.row()
    assert (row["tracks"], row["right"], row["strangers"], row["strangers_named"]) == (3, 2, 1, 1)
    assert (row["switches"], row["fragments"], row["false_tracks"], row["frames"]) == (1, 1, 1, 6)


def test_embed_gives_a_line_per_track_and_reindex_reads_enrolled_frames_again(clip, tmp_path, capsys):
    path, spec = clip
    code, out, _ = run(["embed", path], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 3 and all(len(line["embedding"]) == 128 and "name" not in line for line in lines)
    alone = tmp_path / "ben.mp4"
    write_clip(ClipSpec(640, 480, 30.0, 3.0, (spec.actors[1],)), alone, load_image)
    db = tmp_path / "g.db"
    assert run(["enroll", "--name", "Ben", alone, "--gallery", db, "--count", "2"], capsys)[0] == 0
    code, out, err = run(["reindex", "--gallery", db], capsys)
    assert code == 0 and "reindexed 2 photo(s)" in out, err


def test_keypoints_of_a_video_a_record_per_frame_looked_at_and_a_drawn_copy(clip, tmp_path, capsys):
    path, _ = clip
    code, out, _ = run(["keypoints", path, "--json", "--fps", "5", "--end", "1", "--out", tmp_path / "kp.mp4"], capsys)
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["frame"] for r in records] == [0, 6, 12, 18, 24, 30]
    assert all(len(f["keypoints"]) == 68 for r in records for f in r["faces"]) and records[0]["faces"]
    copy = cv2.VideoCapture(str(tmp_path / "kp.mp4"))
    assert int(copy.get(cv2.CAP_PROP_FRAME_COUNT)) == len(records)


def test_a_video_where_photos_are_taken_is_called_a_video_and_cluster_names_each_photos_reason(clip, tmp_path, capsys):
    path, _ = clip
    with pytest.raises(keyface.ImageError, match="a video, not a photo"):
        keyface.face_locations(str(path))
    (tmp_path / "empty.jpg").write_bytes(b"")
    code, out, err = run(["cluster", "--out", tmp_path / "c", path, tmp_path / "empty.jpg"], capsys)
    assert code == 2 and out == "" and not (tmp_path / "c").exists()
    assert "a video, not a photo" in err and "empty.jpg: empty file" in err and "no face found in any photo" in err


def test_tracks_open_when_a_video_ends_close_in_the_order_they_are_numbered():
    from keyface.recognition.core.tracking import Tracker
    tracker = Tracker(0.05, 0.3)
    first, second = tracker.start(), tracker.start()
    tracker.active, tracker.lost = [second], [first]  # the first was lost from view, then the video ended
    assert [t.id for t in tracker.close_all()] == [1, 2] and tracker.active == tracker.lost == []
