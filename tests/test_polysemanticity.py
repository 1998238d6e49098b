"""The polysemanticity score (phosphene.polysemanticity) on known clusters, its correlation with the
unit score and its intervals, and `experiment score`'s column and polysemanticity.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from phosphene.cli.app import main
from phosphene.errors import PhospheneError
from phosphene.polysemanticity import effective_count, score_unit, score_vectors
from phosphene.psychophysics.polysemanticity import spearman_interval
from phosphene.psychophysics.stimuli import StimulusSet, demo_stimuli


def clusters(centres: int, per: int = 6, spread: float = 0.02, dim: int = 16, seed: int = 0) -> np.ndarray:
    """``centres`` orthogonal directions, ``per`` noisy vectors around each."""
    rng = np.random.default_rng(seed)
    return np.concatenate([np.eye(dim)[c] + spread * rng.standard_normal((per, dim)) for c in range(centres)])


def test_effective_count_is_the_exponential_of_the_label_entropy():
    assert effective_count(np.array([0, 0, 1, 1])) == pytest.approx(2.0)
    assert effective_count(np.array([3, 3, 3])) == pytest.approx(1.0)
    assert 1 < effective_count(np.array([0, 0, 0, 1])) < 2


def test_one_tight_cluster_is_one_facet_and_three_clusters_are_three():
    one = score_vectors(clusters(1))
    assert one.facets == 1 and one.score == pytest.approx(1.0) and one.dispersion < 0.01
    three = score_vectors(clusters(3))
    assert three.facets == 3 and three.score == pytest.approx(3.0) and three.silhouette > 0.3
    assert three.dispersion > 0.3


def test_unequal_facets_count_less_than_their_number():
    vectors = np.concatenate([clusters(1, per=9), clusters(2, per=3, seed=1)[3:]])  # 9 + 3 exemplars
    result = score_vectors(vectors)
    assert result.facets == 2 and 1 < result.score < 2


def test_too_few_exemplars_is_a_one_line_error():
    with pytest.raises(PhospheneError, match="at least 4"):
        score_vectors(clusters(1, per=3))


def test_score_unit_on_real_exemplars_is_between_one_and_the_facet_limit(model, sample_batch):
    images = torch.nn.functional.interpolate(sample_batch[0][:8], size=96, mode="bilinear")
    result = score_unit(model, images, "_blocks.2", 3)
    assert 1.0 <= result.score <= 5.0 and result.exemplars == 8 and 0 <= result.dispersion <= 1


def test_spearman_interval_of_a_monotone_and_of_an_unrelated_pair():
    x = np.arange(12.0)
    perfect = spearman_interval(x, x ** 2)
    assert perfect.rho == pytest.approx(1.0) and perfect.bootstrap == pytest.approx((1.0, 1.0))
    noise = spearman_interval(x, np.random.default_rng(0).standard_normal(12))
    assert noise.bootstrap[0] < noise.rho < noise.bootstrap[1]
    assert noise.fisher[0] < noise.rho < noise.fisher[1] and noise.fisher[1] - noise.fisher[0] > 0.5
    tied = spearman_interval([1.0] * 11 + [2.0], x)  # draws without the odd unit are dropped
    assert 1000 < tied.resamples < 2000
    with pytest.raises(PhospheneError, match="at least 4"):
        spearman_interval([1, 2, 3], [1, 2, 3])


@pytest.fixture(scope="module")
def lite0_stimuli(tmp_path_factory):
    """The demo's images as exemplars of real units of EfficientNet-Lite0 (3 per layer)."""
    demo = demo_stimuli(tmp_path_factory.mktemp("poly"), units_per_depth=3, naturals=6, visualizations=3,
                        size=32)
    layers = {"demo.0": "_blocks.1", "demo.1": "_blocks.2", "demo.2": "_blocks.3"}
    for unit in demo.units:
        unit.layer = layers[unit.layer]
    stimuli = StimulusSet(demo.root, "efficientnet_lite0", demo.units, {"seed": 0})
    stimuli.save()
    return stimuli


def test_score_cli_adds_polysemanticity_and_its_correlation(lite0_stimuli, tmp_path, one_thread):
    result = CliRunner().invoke(main, ["experiment", "score", str(lite0_stimuli.root), "--observer",
                                       "efficientnet_lite0", "--feature-layer", "_blocks.1", "--trials", "20",
                                       "--group", "2", "--quiet", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(tmp_path / "scores.parquet").to_pylist()
    assert all(1 <= r["polysemanticity"] <= 5 and r["facets"] >= 1 for r in rows)
    record = json.loads((tmp_path / "polysemanticity.json").read_text())
    assert len(record["units"]) == 9 and "entropy" in record["definition"]
    correlation = record["correlation_with_unit_score"]["score"]["visualization"]
    assert record["correlation_with_unit_score"]["dispersion"]["exemplar"]["n"] == 9
    poly = [p["score"] for p in record["units"].values()]
    accuracy = [r["score"] for r in rows if r["query"] == "visualization"]
    constant = min(poly) == max(poly) or min(accuracy) == max(accuracy)  # then ρ is NaN
    assert correlation["n"] == 9 and (constant or -1 <= correlation["spearman"] <= 1)
    assert constant == math.isnan(correlation["spearman"])
    assert "Spearman ρ" in result.output and "bootstrap" in result.output


def test_report_layer_page_has_a_sortable_polysemanticity_column(report_site):
    site, _, result = report_site
    layer = json.loads((site / "_blocks.8" / "layer.json").read_text())
    scores = [u["polysemanticity"] for u in layer["units"]]
    assert len(scores) == 3 and all(1 <= s <= 3 for s in scores)  # 4 exemplars: at most 3 facets
    record = json.loads((site / "_blocks.8" / "units" / "0000" / "polysemanticity.json").read_text())
    assert record["exemplars"] == 4 and record["score"] == scores[0]
    page = (site / "_blocks.8" / "index.html").read_text()
    assert ">polysemanticity</th>" in page and 'data-polysemanticity="' in page
    assert 'value="polysemanticity"' in (site / "index.html").read_text()
    assert result.seconds["polysemanticity"] > 0
