"""The uncertainty score's parts behave as documented, and diversity demotes near copies."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from curation.uncertainty import (
    REDUNDANCY_PENALTY,
    WEIGHTS,
    augmented_views,
    brand_margin,
    combine,
    dhash,
    diverse_batches,
    hamming,
    near_threshold,
    queue_features,
    rank_diverse,
    tta_disagreement,
)
from tests.conftest import photo
from wmstudio.runtime import Detection, Prediction

pytestmark = pytest.mark.model

BRANDS = ["rumah123", "99co"]


def prediction(**scores: float) -> Prediction:
    return Prediction(640, 480, tuple(Detection(b, s, (10, 10, 50, 30)) for b, s in scores.items()))


def test_near_threshold_peaks_at_the_threshold() -> None:
    assert near_threshold(0.4, 0.4) == pytest.approx(1.0)
    assert near_threshold(1.0, 0.4) == pytest.approx(0.0)
    assert near_threshold(0.0, 0.4) == pytest.approx(1 / 3)  # span is max(t, 1 - t) = 0.6
    assert near_threshold(0.45, 0.4) > near_threshold(0.8, 0.4)


def test_brand_margin_counts_only_real_confusion() -> None:
    assert brand_margin(np.array([0.6, 0.55]), 0.4) == pytest.approx(0.55 / 0.6)
    assert brand_margin(np.array([0.9, 0.0]), 0.4) == 0.0
    faint = brand_margin(np.array([0.04, 0.04]), 0.4)  # two faint candidates: barely counts
    assert faint == pytest.approx(0.1)


def test_tta_disagreement_sees_spread_and_decision_flips() -> None:
    stable = [np.array([0.8, 0.0]), np.array([0.8, 0.0])]
    assert tta_disagreement(stable, 0.5) == 0.0
    flipping = [np.array([0.55, 0.0]), np.array([0.45, 0.0])]
    assert tta_disagreement(flipping, 0.5) == pytest.approx(0.1 + 0.5)
    assert tta_disagreement([np.array([0.5, 0.5])], 0.5) == 0.0


def test_combined_score_ranks_ambiguous_above_confident() -> None:
    confident = combine(prediction(rumah123=0.97), [prediction(rumah123=0.96)] * 2, BRANDS, 0.4)
    clean = combine(prediction(), [prediction()] * 2, BRANDS, 0.4)
    unsure = combine(prediction(rumah123=0.42, **{"99co": 0.35}), [prediction(rumah123=0.2)] * 2, BRANDS, 0.4)
    assert unsure.score > clean.score > confident.score
    assert unsure.top_brand == "rumah123" and clean.top_brand is None
    assert set(unsure.components) == set(WEIGHTS)
    assert "uncertainty" in unsure.reason()


def test_augmented_views_keep_size_roughly() -> None:
    image = photo(320, 240)
    shifted, scaled = augmented_views(image)
    assert shifted.size == (320, 240)
    assert scaled.size == (272, 204)


def test_dhash_is_stable_under_reencoding_and_differs_between_photos() -> None:
    a, b = photo(320, 240, seed=1), photo(320, 240, seed=1).resize((300, 225))
    other = photo(320, 240, seed=2).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert hamming(dhash(a), dhash(b)) <= 6
    assert hamming(dhash(a), dhash(other)) > 10


def test_rank_diverse_demotes_near_copies_and_known_photos() -> None:
    score = combine(prediction(rumah123=0.4), [], BRANDS, 0.4)
    lower = combine(prediction(rumah123=0.7), [], BRANDS, 0.4)
    ranked = rank_diverse(
        [("a", score, 0b1111), ("a-copy", score, 0b1110), ("b", lower, 0xFFFF0000), ("c", lower, 0x0F0F0F0F0F)],
        max_distance=2,
        known_hashes=[("labelled", 0x0F0F0F0F0F)],
    )
    order = [r.key for r in ranked]
    assert order[0] == "a" and order[1] == "b"
    copy = next(r for r in ranked if r.key == "a-copy")
    assert copy.duplicate_of == "a" and copy.score == pytest.approx(score.score * REDUNDANCY_PENALTY)
    assert next(r for r in ranked if r.key == "c").duplicate_of == "labelled"
    assert "near copy" in copy.reason()


# --- the queue in the store, scored by the bundled model -----------------------------------------


@pytest.fixture
def store_url(tmp_path, monkeypatch) -> str:
    from wmstudio.settings import get_settings
    from wmstudio.store.session import dispose_engines

    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("WMSTUDIO_DATABASE_URL", url)
    monkeypatch.setenv("WMSTUDIO_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    dispose_engines()
    yield url
    get_settings.cache_clear()
    dispose_engines()


def test_queue_features_hold_scores_views_geometry_and_count() -> None:
    base = Prediction(200, 100, (Detection("99co", 0.7, (20, 10, 60, 30)), Detection("rumah123", 0.05, (0, 0, 5, 5))))
    features = queue_features(base, [prediction(rumah123=0.2), prediction()], BRANDS)
    assert features.tolist() == pytest.approx([0.05, 0.7, 0.2, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2, 0.2, 0.1])


def test_diverse_batches_take_one_photo_per_kind_of_doubt() -> None:
    """Six near-identical top doubts and three other kinds: a batch of three covers three kinds."""
    entries = [(f"same{i}", combine(prediction(rumah123=0.5 - i * 0.001), [], BRANDS, 0.5), i) for i in range(6)]
    entries += [
        (f"other{i}", combine(prediction(rumah123=0.45 - i * 0.05), [], BRANDS, 0.5), 100 + i) for i in range(3)
    ]
    features = {key: np.array([0.0, 0.0]) for key, _, _ in entries if key.startswith("same")}
    features |= {"other0": np.array([5.0, 0.0]), "other1": np.array([0.0, 5.0]), "other2": np.array([5.0, 5.0])}
    ranked = rank_diverse(entries, max_distance=0)
    assert [r.key for r in ranked[:3]] == ["same0", "same1", "same2"]  # by score alone: one kind only

    diverse = diverse_batches(ranked, features, batch=3, batches=1)
    first = diverse[:3]
    assert first[0].key == "same0"  # the best-ranked photo of its cluster, picks kept in rank order
    assert len({r.key.rstrip("0123456789") for r in first}) == 2 and sum(r.key.startswith("other") for r in first) == 2
    assert all("diverse pick for batch 1" in r.reason() for r in first)
    assert sorted(r.key for r in diverse) == sorted(r.key for r in ranked)  # nothing lost
    assert diverse_batches(ranked, features, batch=3, batches=1) == diverse  # deterministic


def test_diverse_batches_cope_with_identical_features() -> None:
    entries = [(f"p{i}", combine(prediction(rumah123=0.5 - i * 0.01), [], BRANDS, 0.5), i) for i in range(8)]
    ranked = rank_diverse(entries, max_distance=0)
    diverse = diverse_batches(ranked, {key: np.zeros(3) for key, _, _ in entries}, batch=3, batches=2)
    assert [r.key for r in diverse] == [r.key for r in ranked]  # one cluster: slots filled in rank order


def test_build_queue_scores_ranks_and_upserts(store_url: str, tmp_path, bundled_registry) -> None:
    from sqlalchemy import func, select

    from curation.queue import add_pool_folder, build_queue, pending_items
    from tests.conftest import encode
    from wmstudio.registry import Registry
    from wmstudio.runtime import Detector
    from wmstudio.store.models import Prediction as PredictionRow
    from wmstudio.store.models import QueueItem
    from wmstudio.store.session import transaction

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for seed in range(4):
        image = photo(480, 360, seed=seed)
        if seed % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        (incoming / f"p{seed}.jpg").write_bytes(encode(image, "JPEG"))
    (incoming / "copy.png").write_bytes(encode(photo(480, 360, seed=0).resize((400, 300)), "PNG"))
    (incoming / "broken.jpg").write_bytes(b"not an image")
    detector = Detector.from_version_dir(Registry(bundled_registry).champion_path())
    with transaction(store_url) as session:
        assert add_pool_folder(session, incoming, tmp_path / "pool") == 5
        assert add_pool_folder(session, incoming, tmp_path / "pool") == 0  # idempotent
    with transaction(store_url) as session:
        report = build_queue(session, detector, ["pool"], tta=True, batch_size=2)
    assert report.scored == 5 and report.queued == 5
    assert all("diverse pick for batch" in row["reason"] for row in report.top[:2])
    assert report.demoted_copies >= 1  # seed-0 photo and its resized copy: one of them is demoted
    with transaction(store_url) as session:
        items = pending_items(session, 10)
        assert len(items) == 5 and [i.score for i in items] == sorted((i.score for i in items), reverse=True)
        assert all(i.model_version == detector.version and "uncertainty" in i.reason for i in items)
        rows = session.scalar(select(func.count()).select_from(PredictionRow).where(PredictionRow.x0.is_(None)))
        assert rows == 5 * len(detector.classes)  # one image-level row per brand per photo
        items[0].status, items[0].label_studio_task_id = "sent", 1
    with transaction(store_url) as session:
        again = build_queue(session, detector, ["pool"], tta=False)
        assert again.scored == 4  # the sent photo is not re-scored
        assert session.scalar(select(func.count()).select_from(QueueItem)) == 5  # upserted, no duplicates
        rows = session.scalar(select(func.count()).select_from(PredictionRow).where(PredictionRow.x0.is_(None)))
        assert rows == 5 * len(detector.classes)  # re-scoring replaced this version's rows
