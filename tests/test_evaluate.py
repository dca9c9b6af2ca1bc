"""The detector's window rule: a detect class fires when its probability reaches the threshold."""

from __future__ import annotations

import numpy as np

from generator.evaluate import detection_hits, detection_recalls, false_positive_rates

CLASSES = ["yes", "no", "_unknown_"]
DETECT = ["yes", "no"]
# rows: yes fires; nothing reaches 0.6; no fires; yes at exactly the threshold
SCORES = np.array([[0.7, 0.2, 0.1], [0.5, 0.1, 0.4], [0.1, 0.8, 0.1], [0.6, 0.0, 0.4]])


def test_hits_follow_the_threshold_not_the_argmax():
    y = np.array([0, 0, 2, 2])  # yes, yes, unknown, unknown
    assert detection_hits(SCORES, y, CLASSES, DETECT, 0.6).tolist() == [True, False, False, False]
    assert detection_hits(SCORES, y, CLASSES, DETECT, 0.9).tolist() == [False, False, True, True]


def test_false_positive_rates_count_any_detect_class_firing():
    y = np.array([2, 2, 2, 2])
    fp = false_positive_rates(SCORES, y, CLASSES, DETECT, 0.6)
    assert fp == {"_unknown_": {"windows": 4, "false_positives": 3, "rate": 0.75}}
    assert false_positive_rates(SCORES, y, CLASSES, DETECT, 0.99)["_unknown_"]["rate"] == 0.0


def test_recall_needs_the_own_class_to_fire():
    y = np.array([0, 0, 1, 1])
    r = detection_recalls(SCORES, y, CLASSES, DETECT, 0.6)
    assert r["yes"] == {"windows": 2, "detected": 1, "recall": 0.5}
    assert r["no"] == {"windows": 2, "detected": 1, "recall": 0.5}  # row 3's 'no' scores 0.0
