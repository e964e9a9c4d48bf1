"""keyface from Python: find, verify and identify faces in photos (paths or RGB numpy arrays).

    import keyface
    faces = keyface.find_faces("group.jpg")            # boxes, 68 keypoints, embeddings
    same, distance = keyface.verify("a.jpg", "b.jpg")
    with keyface.Gallery("team.db") as team:           # an SQLite gallery of enrolled people
        team.enrol("Ada Lovelace", ["ada1.jpg", "ada2.jpg"])
        names = [f.name for f in team.identify("meeting.jpg")]

Verbs to compose, as in face_recognition: `face_locations` (boxes only), `face_landmarks` (keypoints by
region), `face_encodings` (unit embeddings, for given boxes or every face), `face_distance` and
`compare_faces` (on embeddings), `draw_faces` (boxes, keypoints and names on a copy of the photo).
`load` gives the shared recogniser, `build` a new one with other settings.

Importing keyface loads no model: the default embedder is loaded on first use and kept.
"""
from keyface.data.errors import (DamagedGalleryError, DataError, EmptyGalleryError, FalseAcceptRateError,
                                 GalleryConflictError, GalleryError, GalleryUnavailableError, ImageError, KeyfaceError,
                                 LandmarksNeededError, MissingDependency, NoDataRootError, NoFaceError,
                                 NoSoftmaxHeadError, NotCalibratedError, OtherModelError, PersonNotFoundError,
                                 SeveralFacesError, SourcePhotoMissingError, VideoError)
from keyface.api import (Face, FoundFace, Gallery, build, compare_faces, draw_faces, face_distance, face_encodings,
                         face_landmarks, face_locations, find_faces, find_faces_all, identify_video, load, verify)
from keyface.runtime.provenance import keyface_version

__version__ = keyface_version()  # "unknown" when run from a checkout that was never installed

__all__ = ["DamagedGalleryError", "DataError", "EmptyGalleryError", "Face", "FalseAcceptRateError", "FoundFace", "Gallery",
           "GalleryConflictError", "GalleryError", "GalleryUnavailableError", "ImageError", "KeyfaceError",
           "LandmarksNeededError", "MissingDependency", "NoDataRootError", "NoFaceError", "NoSoftmaxHeadError", "NotCalibratedError", "OtherModelError",
           "PersonNotFoundError", "SeveralFacesError", "SourcePhotoMissingError", "VideoError", "build",
           "compare_faces", "draw_faces", "face_distance", "face_encodings", "face_landmarks", "face_locations",
           "find_faces", "find_faces_all", "identify_video", "load", "verify"]
