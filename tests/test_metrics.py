import math

import numpy as np

from bot import metrics as M


def test_cosine_and_collapse():
    a = np.array([1.0, 2.0, 3.0])
    assert M.cosine(a, 2 * a) == 1.0
    assert math.isnan(M.cosine(a, np.zeros(3)))  # a collapsed output has no direction


def test_sqnr_and_psnr_follow_noise():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=1000)
    small, large = ref + 0.01 * rng.normal(size=1000), ref + 0.1 * rng.normal(size=1000)
    assert M.sqnr_db(ref, small) > M.sqnr_db(ref, large) + 15
    assert abs(M.sqnr_db(ref, small) - 40) < 2
    assert M.psnr_db(ref, ref) == float("inf")


def test_topk_agreement():
    ref = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    out = np.array([[0.2, 0.3, 0.7], [0.9, 0.0, 0.1]])
    assert M.topk_agreement(ref, out, 1) == 0.5
    assert M.topk_agreement(ref, out, 2) == 1.0
