"""Identification scoring: rank-1 and open-set identification at 1% false alarms on synthetic vectors."""
import numpy as np

from keyface.recognition.evaluation.protocols import identify_scores
from keyface.recognition.core.pipeline import l2_normalise


def clustered(rng, centres, people, noise):
    return l2_normalise(centres[people] + rng.normal(0, noise, (len(people), centres.shape[1])))


def test_rank1_and_dir_on_separable_people():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 32))
    g_people = np.repeat(np.arange(20), 5)
    p_people = np.repeat(np.arange(20), 3)
    gallery = clustered(rng, centres, g_people, 0.1)
    probes = clustered(rng, centres, p_people, 0.1)
    strangers = l2_normalise(rng.normal(size=(200, 32)))
    names = np.array([f"p{i}" for i in g_people], object)
    ok = np.ones(len(probes), bool)
    ok[0] = False  # a probe with no detected face is a miss
    row = identify_scores(gallery, names, probes, np.array([f"p{i}" for i in p_people], object), ok,
                          strangers, np.ones(200, bool))
    assert row["rank1"] == (len(probes) - 1) / len(probes)
    assert 0.9 < row["dir_at_far_1pct"] <= row["rank1"]
    assert row["enrolled_people"] == 20 and row["probes_no_face"] == 1


def test_dir_drops_when_strangers_look_like_members():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(10, 16))
    g_people = np.repeat(np.arange(10), 5)
    gallery = clustered(rng, centres, g_people, 0.3)
    probes = clustered(rng, centres, np.arange(10), 0.3)
    strangers = clustered(rng, centres, rng.integers(0, 10, 100), 0.05)  # closer to members than probes are
    names = np.array([f"p{i}" for i in g_people], object)
    row = identify_scores(gallery, names, probes, np.array([f"p{i}" for i in range(10)], object),
                          np.ones(10, bool), strangers, np.ones(100, bool))
    assert row["rank1"] > 0.8 and row["dir_at_far_1pct"] < 0.3


def test_softmax_head_scores_on_the_same_protocol():
    from keyface.recognition.evaluation.protocols import head_scores
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(8, 16))
    g_people = np.repeat(np.arange(8), 5)
    gallery = clustered(rng, centres, g_people, 0.1)
    probes = clustered(rng, centres, np.repeat(np.arange(8), 2), 0.1)
    names = np.array([f"p{i}" for i in g_people], object)
    truth = np.array([f"p{i}" for i in np.repeat(np.arange(8), 2)], object)
    ok = np.ones(len(probes), bool)
    strangers = l2_normalise(rng.normal(size=(100, 16)))
    row = head_scores(gallery, names, probes, truth, ok, strangers, np.ones(100, bool))
    assert row["head_rank1"] == 1.0 and 0.5 < row["head_dir_at_far_1pct"] <= 1.0
    shuffled = head_scores(gallery, names, probes, truth[::-1], ok, strangers, np.ones(100, bool))
    assert shuffled["head_rank1"] < 0.3  # wrong truth labels: the score falls
