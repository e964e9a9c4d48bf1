"""Arguments are checked before any model (or TensorFlow) loads; folders expand to their images; every
flag has help; commands offer only the flags they use; read-only commands never create a gallery."""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keyface.recognition.cli.main import build_parser
from keyface.recognition.cli.main import ArgumentError, expand
from tests.test_cli_gallery import run

# Commands registered by modules outside this change whose flags still lack help text.


def fast_check(argv: list[str]) -> subprocess.CompletedProcess:
    """Run main(argv) in a fresh interpreter; it prints whether TensorFlow/Keras got imported and how long
    main took."""
    code = ("import sys, time; from keyface.recognition.cli.main import main; t = time.perf_counter(); "
            f"rc = main({argv!r}); dt = time.perf_counter() - t; "
            "print('HEAVY' if {'tensorflow', 'keras'} & set(sys.modules) else 'LIGHT', rc, round(dt, 3))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv,message", [
    (["identify", "/no/such/photo.jpg"], "no such file"),
    (["identify", "https://example.com/a.jpg"], "keyface does not download; save the photo first"),
    (["embed", "http://example.com/a.jpg"], "keyface does not download"),
    (["verify", "a-missing.jpg", "b-missing.jpg"], "no such file"),
    (["cluster", "/no/such/dir", "--out", "x"], "no such file"),
    (["keypoints", "ftp://host/a.png"], "keyface does not download"),
    (["enroll", "--folders", "/no/such/people"], "no such folder"),
    (["enroll", "--folders", "/etc/hostname"], "/etc/hostname: a file, not a folder"),
    (["compare", "--folders", ""], "--folders is empty"),
    (["identify", ""], "a photo path is empty"),  # not the current folder, as Path("") would be
    (["embed", "  "], "a photo path is empty"),
    (["verify", "", "b.jpg"], "a photo path is empty"),
    (["bench", "search", "--size", "1"], "--size: 1 is out of range: stored embeddings, 5 or more"),
    (["bench", "search", "--dim", "0"], "--dim: 0 is out of range"),
    (["bench", "speed", "--photos", "0"], "--photos: 0 is out of range"),
    (["bench", "speed", "--enrol", "-3"], "--enrol: -3 is out of range: a whole number from 0"),
    (["bench", "serve", "--clients", "0"], "--clients: 0 is out of range"),
    (["keypoints", "train", "--epochs", "0"], "--epochs: 0 is out of range"),
    (["compare", "--folders", "x", "--seed", "-1"], "--seed: -1 is out of range: a seed"),
    (["bench", "detect", "--seed", "-1"], "--seed: -1 is out of range: a seed"),
])
def test_bad_photo_arguments_fail_fast_without_tensorflow(argv, message):
    done = fast_check(argv)
    light, rc, seconds = done.stdout.split()
    lines = done.stderr.splitlines()
    assert light == "LIGHT" and rc == "2" and float(seconds) < 1.0
    assert len(lines) == 1 and lines[0].startswith("keyface: error: ") and message in lines[0]


def test_bench_search_takes_any_size_of_five_or_more(tmp_path, capsys):
    code, out, err = run(["bench", "search", "--size", "12", "--dim", "8", "--out", str(tmp_path)], capsys)
    assert code == 0 and "exact (NumPy)" in out and (tmp_path / "search.json").is_file(), err


def test_train_counts_are_checked_too(capsys):  # its parser imports more than the fast check's second allows
    code, _, err = run(["train", "facenet", "--epochs", "0"], capsys)
    assert code == 2 and "argument --epochs: 0 is out of range: a whole number from 1" in err


def test_an_export_never_replaces_a_file_and_an_install_says_what_it_replaces(tmp_path, capsys, caplog):
    (tmp_path / "mine.litert").write_bytes(b"the user's own")
    code, _, err = run(["export", "dlib-resnet", "--out", tmp_path / "mine.litert"], capsys)
    assert code == 2 and "exists: keyface does not overwrite it" in err
    assert (tmp_path / "mine.litert").read_bytes() == b"the user's own"
    from keyface.data.files import install_copy
    (tmp_path / "run.keras").write_bytes(b"new")
    install_copy(tmp_path / "run.keras", tmp_path / "models" / "a.keras")
    assert caplog.text == ""  # nothing there before: nothing to say
    install_copy(tmp_path / "run.keras", tmp_path / "models" / "a.keras")
    assert f"replacing the earlier {tmp_path / 'models' / 'a.keras'}" in caplog.text


def test_a_url_is_not_mangled(capsys):
    code, _, err = run(["identify", "https://example.com/photos/a.jpg"], capsys)
    assert code == 2 and "https://example.com/photos/a.jpg" in err and "https:/e" not in err


def test_verify_takes_two_files_not_a_folder(tmp_path, youtube_sample, capsys):
    code, _, err = run(["verify", youtube_sample[0][0], tmp_path], capsys)
    assert code == 2 and "is a folder" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_photo_is_a_one_line_error(tmp_path, youtube_sample, capsys):
    photo = tmp_path / "locked.jpg"
    shutil.copy(youtube_sample[0][0], photo)
    photo.chmod(0)
    code, _, err = run(["embed", photo], capsys)
    assert code == 2 and "cannot read" in err


def test_photos_loose_beside_the_person_folders_are_named_as_left_out(tmp_path, youtube_sample, caplog):
    from keyface.data.folders import read_person_folders
    (tmp_path / "Kristen").mkdir()
    shutil.copy(youtube_sample[0][0], tmp_path / "Kristen" / "a.jpg")
    shutil.copy(youtube_sample[0][0], tmp_path / "loose.jpg")
    with caplog.at_level("WARNING", logger="keyface.data.folders"):
        assert list(read_person_folders(tmp_path)) == ["Kristen"]
    assert "1 photo(s) directly in the folder (loose.jpg...) left out" in caplog.text


def test_a_folder_means_every_image_in_it_recursively_sorted(tmp_path, youtube_sample):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    rgb = np.full((40, 40, 3), 120, np.uint8)
    Image.fromarray(rgb).save(tmp_path / "b" / "deep" / "z.pgm")  # no usual suffix: Pillow opens it
    Image.fromarray(rgb).save(tmp_path / "b" / "c.gif")
    shutil.copy(youtube_sample[0][0], tmp_path / "a.jpg")
    shutil.copy(youtube_sample[0][0], tmp_path / ".hidden" / "x.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "photo.jpg.part").write_bytes(b"\xff\xd8 truncated download")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "moved.jpg")  # a photo that cannot be read: its error, not a skip
    notes = []
    photos = expand([str(tmp_path)], notes.append)
    assert photos == [str(tmp_path / "a.jpg"), str(tmp_path / "b" / "c.gif"), str(tmp_path / "b" / "deep" / "z.pgm"),
                      str(tmp_path / "gone.jpg")]
    assert len(notes) == 1 and "2 file(s) skipped (not images Pillow can open: notes.txt, photo.jpg.part)" in notes[0]


def test_a_folder_without_images_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(ArgumentError, match="no images"):
        expand([str(tmp_path)])
    code, _, err = run(["identify", tmp_path], capsys)
    assert code == 2 and err.count("\n") == 1 and "no images in this folder" in err


def test_enroll_folders_counts_every_file_pillow_opens(tmp_path, youtube_sample, models, capsys):
    face = np.asarray(Image.open(youtube_sample[0][0]).convert("RGB"))
    person = tmp_path / "people" / "Kristen"
    person.mkdir(parents=True)
    Image.fromarray(face).save(person / "a.ppm")
    Image.fromarray(face).convert("L").save(person / "b.pgm")
    Image.fromarray(face).save(person / "c.gif")
    code, out, _ = run(["enroll", "--folders", tmp_path / "people", "--gallery", tmp_path / "g.db", *models], capsys)
    assert code == 0 and "Kristen: 3 photo(s) added" in out and "; 3 photo(s) added" in out, out
    from keyface.data.folders import read_person_folders
    assert len(read_person_folders(tmp_path / "people")["Kristen"]) == 3


def _walk(parser, path):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, path + [name])
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


def test_every_flag_of_every_command_has_help():
    missing = [" ".join(path + [a.option_strings[0] if a.option_strings else a.dest])
               for path, a in _walk(build_parser(), []) if not a.help]
    assert missing == []


def _flags(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {opt for a in sub._actions for opt in a.option_strings}


@pytest.mark.parametrize("command", ["verify", "embed", "cluster"])
def test_commands_offer_only_the_flags_they_use(command):
    assert "--gallery" not in _flags(command)


def test_cluster_threshold_is_the_clustering_cut():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["cluster"]
    threshold = next(a for a in sub._actions if "--threshold" in a.option_strings)
    assert "clustering cut" in threshold.help


def test_verify_help_documents_its_exit_codes(capsys):
    code, out, _ = run(["verify", "--help"], capsys)
    assert code == 0 and "0 same person" in out and "1 different people" in out and "2 an error" in out


def test_json_lines_format_is_in_help(capsys):
    for argv in (["identify", "--help"], ["embed", "--help"], ["keypoints", "predict", "--help"]):
        code, out, _ = run(argv, capsys)
        assert code == 0 and "JSON Lines" in out and "[x0, y0, x1, y1]" in " ".join(out.split())


@pytest.mark.parametrize("argv", [["--version"], ["--version", "people"], ["--version", "identify", "x.jpg"]])
def test_version_is_printed_on_stdout_whatever_follows(capsys, argv):
    from importlib.metadata import version
    code, out, err = run(argv, capsys)
    assert code == 0 and out.strip() == f"keyface {version('keyface')}" and err == ""


@pytest.mark.parametrize("argv", [["people"], ["rename", "A", "B"], ["remove", "A"], ["check"]])
def test_gallery_commands_never_create_a_missing_gallery(tmp_path, capsys, argv):
    db = tmp_path / "new.db"
    code, _, err = run([*argv, "--gallery", db], capsys)
    assert code == 2 and err.startswith("keyface: error:") and err.count("\n") == 1, err
    assert not db.exists() and "Traceback" not in err


def test_identify_on_a_missing_gallery_fails_before_loading_models(tmp_path, youtube_sample):
    db = tmp_path / "new.db"
    done = fast_check(["identify", "--gallery", str(db), str(youtube_sample[0][0])])
    assert done.stdout.split()[:2] == ["LIGHT", "2"] and "gallery not found" in done.stderr
    assert not db.exists() and list(tmp_path.iterdir()) == []


def test_help_lists_a_commands_own_flags_first_then_the_shared_ones_by_group(capsys):
    code, out, _ = run(["identify", "--help"], capsys)
    sections = [line for line in out.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert code == 0 and sections == ["positional arguments:", "options:", "speed:", "videos:", "gallery:", "models:",
                                      "face detection:"]
    own = out[out.index("options:"):out.index("speed:")]
    assert "--top" in own and "--threshold" in own and "--gallery" not in own
    assert "--camera" in out[out.index("videos:"):out.index("gallery:")]


def test_a_commands_extra_argument_points_to_that_commands_help(capsys):
    from keyface.recognition.cli.main import main
    assert main(["verify", "a.jpg", "b.jpg", "c.jpg"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "keyface: error: unrecognized arguments: c.jpg (see `keyface verify --help`)"


def test_a_folder_lends_its_videos_to_the_commands_that_take_videos_only(tmp_path, youtube_sample):
    import cv2
    from keyface.recognition.cli.main import build_parser, prepare
    shutil.copy(youtube_sample[0][0], tmp_path / "a.jpg")
    clip = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for _ in range(3):
        clip.write(np.full((48, 64, 3), 90, np.uint8))
    clip.release()
    notes = []
    assert expand([str(tmp_path)], notes.append, videos=True) == [str(tmp_path / "a.jpg"), str(tmp_path / "clip.avi")]
    assert notes == []
    assert expand([str(tmp_path)], notes.append) == [str(tmp_path / "a.jpg")] and "clip.avi" in notes[0]
    for command, videos in (["identify"], True), (["embed"], True), (["cluster", "--out", str(tmp_path / "c")], False):
        args = build_parser().parse_args([*command, str(tmp_path)])
        prepare(args)
        assert (str(tmp_path / "clip.avi") in args.photos) == videos, command
