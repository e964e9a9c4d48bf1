"""The k-fold protocol of `keyface compare --folders`: a user's folder-per-person tree split into folds.

Each fold leaves some people out entirely (they are its strangers) and holds back a share of every other
person's photos as probes; the rest is enrolled, and is all that an approach trained within the run (a
softmax head) may see. Over the k folds (3 or more) every person with two or more photos is a stranger
once, and each of their photos a probe once; a person with one photo is a stranger in every fold.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keyface.data.errors import DataError

log = logging.getLogger(__name__)

FOLDS_PROTOCOL = (
    "k folds over your people (seeded). People with 2+ photos are dealt to the folds in turn; in each fold the "
    "people dealt to it are left out (their photos are stranger probes who should come out unknown), and every "
    "other person's photos are split into k-1 groups, one of which is that fold's probes while the rest are "
    "enrolled. People with a single photo are strangers in every fold. Heads trained within the run see only "
    "a fold's enrolled photos. The face used is each photo's largest; a photo with no face counts as a miss.")
MIN_PEOPLE = 3  # with fewer, a fold that leaves one person out has one person left: no identification to score


@dataclass(frozen=True)
class Fold:
    """One fold: who is enrolled with which photos, who is probed with which, who is a stranger."""
    index: int
    enrol: list[tuple[str, Path]]
    probes: list[tuple[str, Path]]
    strangers: list[tuple[str, Path]]
    left_out: list[str]  # people with 2+ photos who are strangers in this fold


def make_folds(people: dict[str, list[Path]], k: int = 5, seed: int = 0) -> list[Fold]:
    """The folds of a folder tree ({person: photos}); fewer than k when there are fewer people than k."""
    if k < 3:  # with two folds, one fold's stranger is the other's only source of probes: some photos never probed
        raise DataError(f"--folds must be at least 3, not {k}")
    known = sorted(p for p, photos in people.items() if len(photos) >= 2)
    singles = sorted(p for p, photos in people.items() if len(photos) == 1)
    if len(known) < MIN_PEOPLE:
        raise DataError(f"comparing on your people needs at least {MIN_PEOPLE} people with 2 or more photos each; "
                        f"found {len(known)} (and {len(singles)} with one photo, who serve only as strangers)")
    rng = np.random.default_rng(seed)
    if k > len(known):  # each fold has its own strangers: at least one person each
        log.info("%d folds, not %d: as many as there are people with 2 or more photos", len(known), k)
        k = len(known)
    stranger_fold = {p: i % k for i, p in enumerate(rng.permutation(known))}
    shuffled = {p: [people[p][i] for i in rng.permutation(len(people[p]))] for p in known}
    return [_fold(f, k, known, singles, people, shuffled, stranger_fold) for f in range(k)]


def _fold(f: int, k: int, known: list[str], singles: list[str], people: dict, shuffled: dict,
          stranger_fold: dict) -> Fold:
    """Fold f: people dealt to it are strangers; everyone else's photo group for f is probed."""
    enrol, probes, strangers = [], [], [(p, people[p][0]) for p in singles]
    for person in known:
        if stranger_fold[person] == f:
            strangers += [(person, path) for path in people[person]]
            continue
        group = [g for g in range(k) if g != stranger_fold[person]].index(f)  # this fold's photo group
        for i, path in enumerate(shuffled[person]):  # k-1 >= 2 groups: a probed person keeps photos enrolled
            (probes if i % (k - 1) == group else enrol).append((person, path))
    return Fold(f, enrol, probes, strangers, sorted(p for p in known if stranger_fold[p] == f))


def fold_record(fold: Fold, root: Path) -> dict:
    """A fold as the report keeps it: every photo by its path under the tree's root."""
    def rel(items):
        return [[person, str(Path(path).relative_to(root))] for person, path in items]
    return {"fold": fold.index, "enrolled": rel(fold.enrol), "probes": rel(fold.probes),
            "strangers": rel(fold.strangers), "left_out": fold.left_out}
