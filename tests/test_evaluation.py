"""evaluate_retrieval against a brute-force numpy ranking and pytorch-metric-learning: distinct
scores, exact ties (duplicated and collapsed embeddings), and inputs of every float dtype and scale."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from see_cuda.evaluation import evaluate_retrieval, retrieval
from see_cuda.evaluation.neighbors import InnerProductSearch

KS = (1, 2, 4, 8, 16)


def brute_force(queries, query_labels, ks, gallery=None, gallery_labels=None):
    """Full similarity matrix in float64, one query at a time, straight from the definitions."""
    single_set = gallery is None
    if single_set:
        gallery, gallery_labels = queries, query_labels
    similarity = unit_rows(queries) @ unit_rows(gallery).T
    recalls = {k: [] for k in ks}
    r_precisions, average_precisions = [], []
    for i in range(len(similarity)):
        ranking = np.argsort(-similarity[i], kind="stable")
        if single_set:
            ranking = ranking[ranking != i]
        relevant = gallery_labels[ranking] == query_labels[i]
        R = int(relevant.sum())
        if R == 0:
            continue
        for k in ks:
            recalls[k].append(relevant[:k].any())
        r_precisions.append(relevant[:R].sum() / R)
        precision_at = [relevant[: j + 1].sum() / (j + 1) for j in range(R)]
        average_precisions.append(sum(p for p, rel in zip(precision_at, relevant[:R]) if rel) / R)
    expected = {f"recall@{k}": float(np.mean(recalls[k])) for k in ks}
    expected["map@r"] = float(np.mean(average_precisions))
    expected["r_precision"] = float(np.mean(r_precisions))
    return expected


def unit_rows(x):
    """Rows divided by their norms in float64 (scaled first, so that no square overflows); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float64)
    scale = np.abs(x).max(1, keepdims=True)
    x = x / np.where(scale > 0, scale, 1)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1)


def clustered(seed, n, num_classes, dim, spread=1.0):
    """Labelled points around class centres, overlapping enough that metrics are not all 1."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    centres = rng.standard_normal((num_classes, dim))
    points = centres[labels] + spread * rng.standard_normal((n, dim))
    return points.astype(np.float32), labels


def near_tie_gap(queries, query_labels, gallery=None, gallery_labels=None):
    """Smallest score gap between neighbours of different relevance, over all queries.

    The float32 search and the float64 reference may order near-tied items
    differently; that changes a metric only when the items differ in relevance.
    """
    single_set = gallery is None
    if single_set:
        gallery, gallery_labels = queries, query_labels
    smallest = np.inf
    for i, scores in enumerate(unit_rows(queries) @ unit_rows(gallery).T):
        others = np.arange(len(gallery)) != i if single_set else slice(None)
        order = np.argsort(scores[others])
        relevant = gallery_labels[others][order] == query_labels[i]
        gaps = np.diff(scores[others][order])[relevant[1:] != relevant[:-1]]
        smallest = min(smallest, gaps.min(initial=np.inf))
    return smallest


def tie_free(make, seed):
    """The first data set `make(seed')` from a fixed seed sequence without near-ties."""
    for attempt in range(200):
        arrays = make(seed + 1000 * attempt)
        if near_tie_gap(*arrays) > 1e-6:
            return arrays
    raise AssertionError("no tie-free data set found")


def single_set_data(n, num_classes, dim, spread=1.0):
    return lambda seed: clustered(seed, n, num_classes, dim, spread)


def query_gallery_data(n, num_queries, num_classes, dim, spread=1.0):
    def make(seed):
        x, y = clustered(seed, n, num_classes, dim, spread)
        return x[:num_queries], y[:num_queries], x[num_queries:], y[num_queries:]

    return make


def assert_metrics_close(actual, expected):
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name] == pytest.approx(expected[name], abs=1e-9), name


@pytest.mark.parametrize("seed,batch_size", [(0, 1), (1, 7), (2, 64), (3, 10_000)])
def test_single_set_matches_brute_force(seed, batch_size):
    x, y = tie_free(single_set_data(n=200, num_classes=12, dim=16), seed)
    metrics = evaluate_retrieval(x, y, ks=KS, batch_size=batch_size)
    assert_metrics_close(metrics, brute_force(x, y, KS))
    assert 0.2 < metrics["recall@1"] < 1.0


@pytest.mark.parametrize("seed,batch_size", [(4, 1), (5, 13), (6, 10_000)])
def test_query_gallery_matches_brute_force(seed, batch_size):
    def make(seed):
        queries, query_labels, gallery, gallery_labels = query_gallery_data(250, 100, 15, 12)(seed)
        # Labels 13 and 14 only among the queries: those queries have nothing to find.
        return queries, query_labels, gallery, np.where(gallery_labels >= 13, 0, gallery_labels)

    queries, query_labels, gallery, gallery_labels = tie_free(make, seed)
    assert (~np.isin(query_labels, gallery_labels)).any()
    metrics = evaluate_retrieval(queries, query_labels, KS, gallery, gallery_labels, batch_size=batch_size)
    assert_metrics_close(metrics, brute_force(queries, query_labels, KS, gallery, gallery_labels))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(20, 120),
    num_classes=st.integers(2, 10),
    dim=st.integers(2, 24),
    batch_size=st.integers(1, 50),
)
def test_single_set_matches_brute_force_on_random_shapes(seed, n, num_classes, dim, batch_size):
    x, y = clustered(seed, n, num_classes, dim, spread=2.0)
    if np.bincount(y).max() < 2 or near_tie_gap(x, y) < 1e-6:
        return  # near-ties or no answerable query: not this test's subject
    ks = (1, min(5, n - 1))
    assert_metrics_close(evaluate_retrieval(x, y, ks, batch_size=batch_size), brute_force(x, y, ks))


def pml_accuracy(queries, query_labels, gallery=None, gallery_labels=None):
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    # Its default search is Euclidean; on unit vectors that ranks like cosine.
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    if gallery is not None:
        gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    calculator = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
                                    k="max_bin_count", device=torch.device("cpu"))
    if gallery is None:
        return calculator.get_accuracy(queries, query_labels)
    return calculator.get_accuracy(queries, query_labels, gallery, gallery_labels, ref_includes_query=False)


def test_agrees_with_pytorch_metric_learning_single_set():
    pytest.importorskip("pytorch_metric_learning")
    x, y = tie_free(single_set_data(n=250, num_classes=20, dim=32, spread=1.5), 7)
    ours = evaluate_retrieval(x, y, ks=(1,), batch_size=50)
    theirs = pml_accuracy(x, y)
    assert ours["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-9)
    assert ours["map@r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-9)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-9)


def test_agrees_with_pytorch_metric_learning_query_gallery():
    pytest.importorskip("pytorch_metric_learning")
    queries, query_labels, gallery, gallery_labels = tie_free(query_gallery_data(300, 120, 25, 32, 1.5), 8)
    ours = evaluate_retrieval(queries, query_labels, (1,), gallery, gallery_labels, batch_size=30)
    theirs = pml_accuracy(queries, query_labels, gallery, gallery_labels)
    assert ours["recall@1"] == pytest.approx(theirs["precision_at_1"], abs=1e-9)
    assert ours["map@r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-9)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-9)


def test_exact_duplicates_within_a_class_score_perfectly():
    # Every class is 3 copies of one direction: the query ties with its copies, and
    # excluding itself by index (not every item at its score) leaves them relevant.
    rng = np.random.default_rng(9)
    directions = np.linalg.qr(rng.standard_normal((16, 16)))[0][:10]
    labels = np.repeat(np.arange(10), 3)
    order = rng.permutation(len(labels))
    x, y = directions[labels][order], labels[order]
    metrics = evaluate_retrieval(x, y, ks=(1, 2, 4), batch_size=4)
    assert metrics == {"recall@1": 1.0, "recall@2": 1.0, "recall@4": 1.0, "map@r": 1.0, "r_precision": 1.0}


def test_duplicate_of_another_label_outranks_own_class():
    # a0 and b0 are the same point with different labels; a1, b1 point elsewhere.
    # Query a0 must find b0 first (score 1), not skip it for sharing its own score.
    e = np.eye(4, dtype=np.float32)
    x = np.stack([e[0], 0.8 * e[0] + 0.6 * e[1], e[0], e[2] + 0.1 * e[3]])
    y = np.array([0, 0, 1, 1])
    metrics = evaluate_retrieval(x, y, ks=(1, 2))
    # a0: ranking b0, a1, b1 -> miss at 1, hit at 2, AP@R=0. b0 likewise with a0 first.
    # a1: nearest a0/b0 tie at 0.8 -> ties by index give a0 (relevant). b1: nearest by score.
    expected = brute_force(x, y, (1, 2))
    assert_metrics_close(metrics, expected)
    assert metrics["recall@1"] == pytest.approx(0.25)


def test_ties_rank_by_ascending_index_and_self_is_excluded():
    gallery = torch.ones((50, 4)) / 2
    search = InnerProductSearch(gallery)
    rows = torch.tensor([0, 3, 49])
    neighbours = search.search(gallery[rows], 5, self_indices=rows)
    assert neighbours.tolist() == [[1, 2, 3, 4, 5], [0, 1, 2, 4, 5], [0, 1, 2, 3, 4]]


def test_ties_far_down_the_gallery_are_found():
    # Query e0: 20 items score 1 at the end of the gallery, 280 score 0 before them. The
    # top 10 are the first ten of the 20, which the first prefixes searched do not reach.
    gallery = torch.zeros((300, 3))
    gallery[:280, 1] = 1
    gallery[280:, 0] = 1
    search = InnerProductSearch(gallery)
    query = torch.tensor([[1.0, 0, 0]])
    assert search.search(query, 10).tolist() == [list(range(280, 290))]
    # k = 25: the 20 at score 1, then the lowest-indexed 5 of the 280 tied at 0.
    assert search.search(query, 25).tolist() == [list(range(280, 300)) + [0, 1, 2, 3, 4]]
    # Self excluded: the query is gallery row 281, among the tied ones.
    assert search.search(gallery[[281]], 10, torch.tensor([281])).tolist() == [[280] + list(range(282, 291))]


@pytest.mark.parametrize("batch_size", [1, 5, 1000])
def test_heavy_ties_follow_the_index_order_policy(batch_size):
    # Axis directions: every score is exactly 0 or 1 in float32 and float64 alike, so
    # the brute force's stable sort states the policy (equal scores by ascending index).
    rng = np.random.default_rng(12)
    x = np.eye(6, dtype=np.float32)[rng.integers(0, 6, 90)]
    y = rng.integers(0, 3, 90)
    ks = (1, 3, 10)
    assert_metrics_close(evaluate_retrieval(x, y, ks, batch_size=batch_size), brute_force(x, y, ks))
    metrics = evaluate_retrieval(x[:30], y[:30], ks, x[30:], y[30:], batch_size=batch_size)
    assert_metrics_close(metrics, brute_force(x[:30], y[:30], ks, x[30:], y[30:]))


def test_torch_and_numpy_inputs_agree_and_inputs_are_not_modified():
    x, y = clustered(10, n=120, num_classes=6, dim=8)
    x_copy = x.copy()
    tensor = torch.from_numpy(x)  # shares memory with x
    from_numpy = evaluate_retrieval(x, y)
    from_torch = evaluate_retrieval(tensor, torch.from_numpy(y))
    from_double = evaluate_retrieval(tensor.double(), torch.from_numpy(y).int())
    assert from_numpy == from_torch
    assert from_double == pytest.approx(from_numpy)
    np.testing.assert_array_equal(x, x_copy)


def test_score_blocks_stay_within_the_memory_bound(monkeypatch):
    x, y = clustered(11, n=200, num_classes=2, dim=8)
    expected = evaluate_retrieval(x, y, ks=(1, 4))
    searched_shapes = []
    original_search = InnerProductSearch.search

    def recording_search(self, queries, k, self_indices=None):
        searched_shapes.append((queries.shape[0], self.size, k))
        return original_search(self, queries, k, self_indices)

    monkeypatch.setattr(InnerProductSearch, "search", recording_search)
    monkeypatch.setattr(retrieval, "MAX_SCORE_ENTRIES", 1000)
    assert evaluate_retrieval(x, y, ks=(1, 4), batch_size=500) == pytest.approx(expected)
    largest_class = np.bincount(y).max()
    assert all(rows * size <= 1000 and k == largest_class - 1 for rows, size, k in searched_shapes)
    assert len(searched_shapes) > 1


def exact_score_rows(rng, n, dim, pool_size, zero_fraction, scales):
    """n rows drawn, with repeats, from `pool_size` directions of 4 entries +-1 (+-1/2 once
    normalised), each row times a scale from `scales`, some rows zero. Every inner product
    of normalised rows is then a multiple of 1/4, exact in float32 and float64 whatever the
    order of summation: the search and the brute force see the same ties."""
    pool = np.zeros((pool_size, dim))
    for direction in pool:
        direction[rng.choice(dim, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
    rows = pool[rng.integers(0, pool_size, n)] * rng.choice(scales, n)[:, None]
    rows[rng.random(n) < zero_fraction] = 0
    return rows


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(3, 90),
    dim=st.integers(4, 10),
    pool_size=st.integers(1, 6),
    zero_fraction=st.sampled_from([0.0, 0.2]),
    num_classes=st.integers(1, 6),
    batch_size=st.integers(1, 40),
    query_gallery=st.booleans(),
)
def test_tied_scores_match_brute_force(seed, n, dim, pool_size, zero_fraction, num_classes, batch_size,
                                       query_gallery):
    """Duplicated embeddings (pool_size 1: a collapsed model), zero rows and rows of any
    scale, ranked by the tie policy exactly as the brute force's stable sort ranks them."""
    rng = np.random.default_rng(seed)
    x = exact_score_rows(rng, n, dim, pool_size, zero_fraction, scales=[1.0, 3.7, 1e-300, 1e300])
    y = rng.integers(0, num_classes, n)
    if query_gallery:
        queries, gallery = x[: n // 3 + 1], x[n // 3 + 1 :]
        query_labels, gallery_labels = y[: n // 3 + 1], y[n // 3 + 1 :].copy()
        gallery_labels[0] = query_labels[0]  # at least one answerable query
        searchable = len(gallery)
    else:
        y[1] = y[0]
        queries, query_labels, gallery, gallery_labels = x, y, None, None
        searchable = n - 1
    ks = tuple(sorted(set(rng.integers(1, searchable + 1, 3).tolist())))
    metrics = evaluate_retrieval(queries, query_labels, ks, gallery, gallery_labels, batch_size=batch_size)
    assert_metrics_close(metrics, brute_force(queries, query_labels, ks, gallery, gallery_labels))


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_collapsed_model_matches_brute_force(batch_size):
    # Every embedding the same: every score ties, and the ranking is the gallery order.
    rng = np.random.default_rng(13)
    x = np.tile(rng.standard_normal(16).astype(np.float32), (400, 1))
    y = rng.integers(0, 40, 400)
    ks = (1, 2, 4, 8, 32)
    assert_metrics_close(evaluate_retrieval(x, y, ks, batch_size=batch_size), brute_force(x, y, ks))
    metrics = evaluate_retrieval(x[:100], y[:100], ks, x[100:], y[100:], batch_size=batch_size)
    assert_metrics_close(metrics, brute_force(x[:100], y[:100], ks, x[100:], y[100:]))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_search_ranks_ties_as_the_cpu_search():
    rng = np.random.default_rng(14)
    x = exact_score_rows(rng, 3000, 8, 5, 0.1, scales=[1.0, 2.5])
    y = rng.integers(0, 30, 3000)
    on_cpu = evaluate_retrieval(x, y, (1, 4, 16), use_gpu=False)
    on_gpu = evaluate_retrieval(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda(), (1, 4, 16), use_gpu=True)
    assert on_gpu == on_cpu
    assert on_cpu == pytest.approx(brute_force(x, y, (1, 4, 16)), abs=1e-9)


def tie_free_set(seed):
    return tie_free(single_set_data(n=150, num_classes=10, dim=12), seed)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_every_torch_float_dtype_is_taken_as_its_values(dtype):
    x, y = tie_free_set(15)
    narrow = torch.from_numpy(x).to(dtype)
    # The same values in float64: a narrower dtype is widened exactly, then normalised alike.
    assert evaluate_retrieval(narrow, y) == evaluate_retrieval(narrow.double().numpy(), y)


@pytest.mark.parametrize("scale,dtype", [(1e300, np.float64), (1e-300, np.float64), (1e-315, np.float64),
                                         (1e30, np.float32), (1e-30, np.float32), (1e-40, np.float32)])
def test_scale_of_the_rows_does_not_matter(scale, dtype):
    # float64 beyond the float32 range, norms whose square over- or underflows float32
    # (and float64), subnormal values: all rank like the unscaled rows.
    x, y = tie_free_set(16)
    scaled = (x.astype(np.float64) * scale).astype(dtype)
    assert np.isfinite(scaled).all() and (np.abs(scaled).max(1) > 0).all()
    expected = evaluate_retrieval(x, y)
    assert evaluate_retrieval(scaled, y) == pytest.approx(expected, abs=1e-9)
    assert evaluate_retrieval(x[:50], y[:50], (1,), scaled[50:], y[50:]) == pytest.approx(
        evaluate_retrieval(x[:50], y[:50], (1,), x[50:], y[50:]), abs=1e-9)


def test_rows_are_normalised_without_overflow_or_underflow():
    from see_cuda.evaluation.inputs import as_embeddings

    rows = np.array([[1e300, -1e300, 0.0], [3e-320, 0.0, 4e-320], [0.0, 0.0, 0.0], [2e19, 0.0, 0.0]])
    unit = as_embeddings(rows, "embeddings", torch.device("cpu"))
    assert unit.dtype == torch.float32
    np.testing.assert_allclose(unit.numpy(), [[2**-0.5, -(2**-0.5), 0], [0.6, 0, 0.8], [0, 0, 0], [1, 0, 0]],
                               rtol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without a CUDA device")
def test_use_gpu_without_a_gpu_is_a_clear_error():
    x, y = tie_free_set(17)
    with pytest.raises(ValueError, match="use_gpu=True.*no CUDA device"):
        evaluate_retrieval(x, y, use_gpu=True)


@pytest.mark.skipif(np.finfo(np.longdouble).max <= np.finfo(np.float64).max, reason="long double is float64 here")
def test_long_double_beyond_float64_is_refused():
    x = np.ones((4, 2), dtype=np.longdouble) * np.longdouble("1e400")
    with pytest.raises(ValueError, match="embeddings.*beyond the float64 range"):
        evaluate_retrieval(x, np.array([0, 0, 1, 1]))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(embeddings=[[1.0, 0.0]]), TypeError, "embeddings"),
        (dict(embeddings=np.zeros((4, 2), dtype=np.int32)), TypeError, "embeddings"),
        (dict(embeddings=np.zeros(4, dtype=np.float32)), ValueError, "embeddings"),
        (dict(embeddings=np.full((4, 2), np.nan, dtype=np.float32)), ValueError, "embeddings"),
        (dict(embeddings=torch.full((4, 2), torch.inf, dtype=torch.bfloat16)), ValueError, "embeddings"),
        (dict(embeddings=torch.ones((4, 2), dtype=torch.complex64)), TypeError, "embeddings"),
        (dict(use_gpu="yes"), TypeError, "use_gpu"),
        (dict(labels=np.zeros(4)), TypeError, "labels"),
        (dict(labels=np.zeros(3, dtype=np.int64)), ValueError, "labels"),
        (dict(ks=()), ValueError, "ks"),
        (dict(ks=(0,)), ValueError, "ks"),
        (dict(ks=(1.5,)), TypeError, "ks"),
        (dict(ks=(4,)), ValueError, "ks"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(gallery_embeddings=np.ones((3, 2), dtype=np.float32)), ValueError, "gallery_labels"),
        (
            dict(gallery_embeddings=np.ones((3, 5), dtype=np.float32), gallery_labels=np.zeros(3, dtype=np.int64)),
            ValueError,
            "gallery_embeddings",
        ),
        (
            dict(gallery_embeddings=np.ones((3, 2), dtype=np.float32), gallery_labels=np.zeros(2, dtype=np.int64)),
            ValueError,
            "gallery_labels",
        ),
        (dict(labels=np.arange(4), ks=(1,)), ValueError, "no query has a relevant"),
    ],
)
def test_invalid_input_names_the_argument(kwargs, error, match):
    arguments = dict(embeddings=np.eye(4, 2, dtype=np.float32) + 1, labels=np.array([0, 0, 1, 1]))
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        evaluate_retrieval(**arguments)
