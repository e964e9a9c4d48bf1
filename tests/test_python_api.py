"""The Python API: the README's example runs as written, and arrays work wherever paths do."""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import keyface
from keyface.data.images import load_image
from keyface.recognition.cli.demo import demo_root

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    """The first Python block of the README's Python section."""
    section = README.read_text().split("## Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """The example's file names, filled with shipped LFW demo photos: Ada and Alan are two real people,
    the meeting photo is another photo of Alan's."""
    gallery, probes = demo_root() / "gallery", demo_root() / "probes"
    names = {"ada1.jpg": gallery / "Nancy Pelosi" / "Nancy_Pelosi_0001.jpg",
             "ada2.jpg": gallery / "Nancy Pelosi" / "Nancy_Pelosi_0002.jpg",
             "alan1.jpg": gallery / "Tom Cruise" / "Tom_Cruise_0001.jpg",
             "alan2.jpg": gallery / "Tom Cruise" / "Tom_Cruise_0002.jpg",
             "meeting.jpg": probes / "Tom_Cruise_0006.jpg"}
    for name, source in names.items():
        shutil.copy(source, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEYFACE_MODELS", str(tmp_path / "models"))  # the shipped models only
    return tmp_path


def test_the_readme_example_enrols_two_people_and_identifies_a_photo(photos, capsys):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 12
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    printed = capsys.readouterr().out
    assert printed.startswith("Alan Turing ") and namespace["same"] is True
    assert len(namespace["faces"]) == 1 and namespace["faces"][0].embedding.shape == (128,)
    with keyface.Gallery(photos / "team.db", create=False) as team:
        assert team.people() == {"Ada Lovelace": 2, "Alan Turing": 2}


def test_arrays_work_like_paths_and_mistakes_are_keyface_errors(photos):
    array = load_image(photos / "meeting.jpg")
    from_path, from_array = keyface.find_faces(photos / "meeting.jpg"), keyface.find_faces(array)
    np.testing.assert_allclose(from_path[0].embedding, from_array[0].embedding, atol=1e-6)
    same, distance = keyface.verify(array, photos / "alan1.jpg")
    assert same and distance < 0.1
    with pytest.raises(keyface.KeyfaceError, match="RGB uint8"):
        keyface.find_faces(array.astype(np.float32))
    with pytest.raises(keyface.KeyfaceError, match="no face found"):
        keyface.verify(np.full((200, 200, 3), 128, np.uint8), array)
    with keyface.Gallery(photos / "g.db") as gallery:
        added, errors = gallery.enrol("Alan", [array, photos / "nope.jpg"])
        assert added == 1 and len(errors) == 1 and "nope.jpg" in str(errors[0])
        assert gallery.identify(photos / "alan1.jpg")[0].name == "Alan"
        from PIL import Image
        added, errors = gallery.enrol("Bob", Image.fromarray(array))  # the same pixels as a PIL image: one photo
        assert added == 0 and str(errors[0]) == "image array: already enrolled as 'Alan'", errors
        assert gallery.identify(Image.open(photos / "alan1.jpg"))[0].name == "Alan"
        added, errors = gallery.enrol("Alan", [None, 3])  # not a photo at all: each refused by kind
        assert added == 0 and [type(e) for e in errors] == [keyface.ImageError] * 2
        added, errors = gallery.enrol("Alan", "")  # an unset variable: not the current folder
        assert added == 0 and [str(e) for e in errors] == ["a photo path is empty"]
        with pytest.raises(keyface.ImageError, match="a photo path is empty"):
            gallery.identify("")
    for not_a_photo in (None, 3, ["a.jpg"]):
        with pytest.raises(keyface.ImageError, match="a file's path, a PIL image or an RGB uint8 array"):
            keyface.find_faces(not_a_photo)
    with pytest.raises(keyface.GalleryError, match="is closed"):  # used after its with-block
        gallery.identify(photos / "alan1.jpg")
    with pytest.raises(keyface.GalleryError, match="is closed"):
        gallery.people()
    for photos_given in ([], [photos / "nope.jpg"]):  # refused before any photo is read, as the other verbs are
        with pytest.raises(keyface.GalleryError, match="is closed"):
            gallery.enrol("Alan", photos_given)
    with keyface.Gallery(photos / "never-made.db") as unmade:
        pass
    with pytest.raises(keyface.GalleryError, match="is closed"):  # a closed new gallery is not made by an enrolment
        unmade.enrol("Alan", [array])
    assert not (photos / "never-made.db").exists()


def test_the_readme_verbs_run_as_written(tmp_path, monkeypatch):
    """The README's second Python block (the smaller verbs), on a photo with three faces."""
    section = README.read_text().split("## Python", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[1]
    probes, gallery = demo_root() / "probes", demo_root() / "gallery"
    for name, source in {"party.jpg": probes / "Gordon_Brown_0006.jpg", "a.jpg": gallery / "Tom Cruise" / "Tom_Cruise_0001.jpg",
                         "b.jpg": gallery / "Tom Cruise" / "Tom_Cruise_0002.jpg"}.items():
        shutil.copy(source, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    namespace = {"keyface": keyface}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    boxes, vectors, picture = namespace["boxes"], namespace["vectors"], namespace["picture"]
    assert 1 <= len(boxes) <= 10 and vectors.shape == (len(boxes), 128) and set(namespace["regions"][0]) >= {"nose_tip", "all"}
    assert picture.shape == load_image(tmp_path / "party.jpg").shape and not np.array_equal(picture, load_image(tmp_path / "party.jpg"))


def test_largest_face_is_measured_inside_the_photo_and_one_photo_is_one_photo(tmp_path):
    """Tom_Cruise_0007 shows a man cut off at the left edge whose box, counted beyond the photo, is wider than
    Tom's; the largest face is Tom's. identify_all given one path identifies that photo, not its characters."""
    probes = demo_root() / "probes"
    same, _ = keyface.verify(probes / "Tom_Cruise_0006.jpg", probes / "Tom_Cruise_0007.jpg", largest_face=True)
    assert same
    with keyface.Gallery(tmp_path / "g.db") as gallery:
        gallery.enrol("Tom", [demo_root() / "gallery" / "Tom Cruise" / "Tom_Cruise_0001.jpg"])
        (photo, faces), = gallery.identify_all(str(probes / "Tom_Cruise_0006.jpg"))
        assert photo == str(probes / "Tom_Cruise_0006.jpg") and [f.name for f in faces] == ["Tom"]
        for top in (0, -1, None, 2.5):
            with pytest.raises(keyface.KeyfaceError, match="1 or more"):
                gallery.identify(probes / "Tom_Cruise_0006.jpg", top=top)
        # a string or a number is not a yes/no ("no" would be true), whether or not this call uses the setting
        for verb in (lambda: gallery.enrol("Tom", [], largest_face="no"),
                     lambda: keyface.verify(probes / "Tom_Cruise_0006.jpg", probes / "Tom_Cruise_0007.jpg",
                                            largest_face="no"),
                     lambda: gallery.identify(probes / "Tom_Cruise_0006.jpg", head=1)):
            with pytest.raises(keyface.KeyfaceError, match="is True or False"):
                verb()
        for least in (5, -0.1, "0.5"):
            with pytest.raises(keyface.KeyfaceError, match="min_probability is a probability"):
                list(gallery.identify_all([probes / "Tom_Cruise_0006.jpg"], min_probability=least))
        with pytest.raises(keyface.KeyfaceError, match="place, left to right, 1 or more"):
            faces[0].to_json("a")
        assert faces[0].to_json(2)["face"] == 2


@pytest.mark.parametrize("settings", [{"several_faces": "x"}, {"threshold": float("nan")}, {"threshold": -5},
                                      {"threshold": "0.5"}])
def test_a_recogniser_refuses_settings_that_would_answer_wrongly_as_a_keyface_error(settings):
    from keyface.recognition.core.pipeline import Recogniser
    with pytest.raises(keyface.KeyfaceError):  # a NaN or negative cut would call one photo two people
        Recogniser(None, None, **settings)
    with pytest.raises(keyface.KeyfaceError, match="several_faces"):
        Recogniser(None, None).taking("most")


def test_small_api_mistakes_are_refused_in_words(tmp_path):
    with pytest.raises(keyface.GalleryError, match="not an empty one"):
        keyface.Gallery("")
    photo = demo_root() / "probes" / "Tom_Cruise_0006.jpg"  # one face
    for score in (1.5, -1, float("nan")):
        with pytest.raises(keyface.KeyfaceError, match="min_score"):
            keyface.face_locations(photo, min_score=score)
    for verb in (lambda: keyface.verify(photo, photo, threshold=-0.1),  # one check of a distance cut everywhere
                 lambda: keyface.compare_faces(np.eye(2), np.eye(2)[0], tolerance=-0.1)):
        with pytest.raises(keyface.KeyfaceError, match="is a distance, 0 or more"):
            verb()
    same, distance = keyface.verify(photo, photo)
    assert same and distance == 0.0  # never a tiny negative distance
    with pytest.raises(keyface.ImageError, match=r"^http://x/y.jpg: keyface does not download"):  # as given
        keyface.face_locations("http://x/y.jpg")
