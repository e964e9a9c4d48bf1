"""How each trainable embedder is made: one function per approach, all called the same way.

A trainer gets the run's settings, a function that returns the aligned training faces for an input
spec (detected, keypointed and cut as that approach wants them), a run folder and a note on the
data; it returns the model file it wrote and the faces it trained on (calibration reads the people
it held out from there). The registry (approaches.registry) names which trainer makes which embedder
and which settings it reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from keyface.data.errors import KeyfaceError
from keyface.keypoints.predictor import InputSpec
from keyface.recognition.training.face_sets import FaceSet

FacesFor = Callable[[InputSpec], FaceSet]


@dataclass
class TrainSettings:
    """What a training run may be told; each approach reads only its own settings (its Registration's)."""
    keypoint_model: Path
    models: str | None = None
    head_epochs: int | None = None
    finetune_epochs: int | None = None
    weights: str | None = None
    input_size: int | None = None
    epochs: int | None = None
    lr: float | None = None
    mining: str | None = None
    source_model: Path | None = None  # facenet-dlib: the dlib-resnet file it starts from

    def given(self, name: str, default):
        """A setting's value, or the approach's own default where the run did not set it."""
        value = getattr(self, name)
        return default if value is None else value


def train_keypoints(s: TrainSettings, faces_for: FacesFor, run_dir: Path, note: str) -> tuple[Path, FaceSet]:
    """Approach A: the keypoint net's features under a softmax over identities."""
    from keyface.recognition.approaches.keypoints import SPEC, IdentityConfig, train_approach_a
    faces = faces_for(SPEC)
    cfg = IdentityConfig(head_epochs=s.given("head_epochs", 4), finetune_epochs=s.given("finetune_epochs", 12))
    return train_approach_a(faces, s.keypoint_model, cfg, run_dir, note), faces


def train_geometry(s: TrainSettings, faces_for: FacesFor, run_dir: Path, note: str) -> tuple[Path, FaceSet]:
    """The baseline: LDA over aligned keypoint coordinates; 10% of the people held out to calibrate."""
    from keyface.recognition.approaches.geometry import SPEC, fit_geometry
    from keyface.recognition.training.held_out import held_out_names, split_people
    faces = faces_for(SPEC)
    train, val = split_people(faces, 0.1, 0)
    return fit_geometry(train, 64, run_dir / "embedder.keras", note, held_out_names(val)), faces


def train_inception(s: TrainSettings, faces_for: FacesFor, run_dir: Path, note: str) -> tuple[Path, FaceSet]:
    """Approach B: Inception-v3 from ImageNet (or another source), fine-tuned; its classifier is kept too."""
    from keyface.inception_finetune.train import CLASSIFIER_FILE, InceptionConfig, train_inception as train_b
    from keyface.inception_finetune.train import classifier_path
    cfg = InceptionConfig(input_size=s.given("input_size", 160), weights=s.given("weights", "imagenet"),
                          finetune_epochs=s.given("finetune_epochs", 12))
    faces = faces_for(cfg.spec)
    made = train_b(faces, cfg, run_dir, note, s.models)
    target = classifier_path(s.models)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes((run_dir / CLASSIFIER_FILE).read_bytes())
    return made, faces


def train_facenet(s: TrainSettings, faces_for: FacesFor, run_dir: Path, note: str,
                  source: str = "none") -> tuple[Path, FaceSet]:
    """Approach C: a triplet-trained embedding, from scratch or (source) from dlib-resnet."""
    from keyface.facenet.model import FacenetConfig
    from keyface.facenet.train import FINETUNE_DEFAULTS, TrainConfig, train_facenet as train_c
    tuned = {} if source == "none" else dict(FINETUNE_DEFAULTS)
    tuned.update({k: v for k, v in (("epochs", s.epochs), ("lr", s.lr)) if v is not None})
    if source != "none" and s.source_model is None:
        raise KeyfaceError(f"fine-tuning {source} needs its model file")
    cfg = TrainConfig(model=FacenetConfig(input_size=s.given("input_size", 96)), mining=s.given("mining", "batch-hard"),
                      source=source, source_model=None if s.source_model is None else str(s.source_model), **tuned)
    faces = faces_for(cfg.spec)
    return train_c(faces, cfg, run_dir, note), faces


def train_facenet_dlib(s: TrainSettings, faces_for: FacesFor, run_dir: Path, note: str) -> tuple[Path, FaceSet]:
    """C's triplet training started from dlib-resnet."""
    return train_facenet(s, faces_for, run_dir, note, source="dlib-resnet")
