"""The per-unit machine interpretability score: known answers on synthetic features, output, CLI."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from phosphene.cli.app import main
from phosphene.errors import PhospheneError
from phosphene.psychophysics.score import (
    UnitFeatures,
    layer_summary,
    plot_scores,
    score_units,
    split_naturals,
    write_scores,
)
from phosphene.psychophysics.stimuli import demo_stimuli


def units_from(features: torch.Tensor, visualizations: torch.Tensor, layer: str = "L") -> list[UnitFeatures]:
    """features (U, n, D) naturals and (U, m, D) visualizations -> units of one layer."""
    return [UnitFeatures(f"{layer}:{u}", layer, "early", u, F.normalize(features[u], dim=1),
                         F.normalize(visualizations[u], dim=1)) for u in range(features.shape[0])]


def test_identical_query_and_candidate_features_score_one():
    codes = torch.eye(6, 16)  # unit u: every image has feature e_u
    units = units_from(codes[:, None].expand(6, 10, 16), codes[:, None].expand(6, 5, 16))
    scores = score_units(units, trials=50, k=3)
    assert len(scores) == 12 and {s.query for s in scores} == {"visualization", "exemplar"}
    assert all(s.score == 1.0 for s in scores)


def test_random_features_score_near_chance():
    gen = torch.Generator().manual_seed(0)
    units = units_from(torch.randn(8, 10, 64, generator=gen), torch.randn(8, 5, 64, generator=gen))
    scores = score_units(units, trials=400, k=3, seed=1)
    mean = sum(s.score for s in scores) / len(scores)
    assert 0.45 < mean < 0.55


def test_visualizations_unlike_the_exemplars_score_lower_than_exemplars():
    gen = torch.Generator().manual_seed(2)
    centres = F.normalize(torch.randn(6, 1, 32, generator=gen), dim=2)
    naturals = centres + 0.3 * torch.randn(6, 10, 32, generator=gen)
    noise = torch.randn(6, 5, 32, generator=gen)  # visualizations that show nothing of the unit
    scores = score_units(units_from(naturals, noise), trials=200)
    by_query = {q: [s.score for s in scores if s.query == q] for q in ("exemplar", "visualization")}
    assert min(by_query["exemplar"]) > 0.9
    assert sum(by_query["visualization"]) / 6 < 0.7


def test_held_out_split_keeps_queries_and_candidates_apart():
    naturals = torch.arange(10.0)[:, None]
    candidates, queries = split_naturals(naturals)
    assert candidates.flatten().tolist() == [0, 2, 4, 6, 8] and queries.flatten().tolist() == [1, 3, 5, 7, 9]


def test_bad_inputs_are_clear_errors():
    units = units_from(torch.randn(3, 4, 8), torch.randn(3, 2, 8))
    with pytest.raises(PhospheneError, match="groups of 3"):
        score_units(units, k=3)
    with pytest.raises(PhospheneError, match="at least two units"):
        score_units(units[:1], k=1)
    with pytest.raises(PhospheneError, match="trials"):
        score_units(units, trials=0, k=1)


def test_scores_write_parquet_summary_and_plot(tmp_path):
    gen = torch.Generator().manual_seed(3)
    units = units_from(torch.randn(4, 6, 8, generator=gen), torch.randn(4, 3, 8, generator=gen))
    units += units_from(torch.randn(3, 6, 8, generator=gen), torch.randn(3, 3, 8, generator=gen), "M")
    scores = score_units(units, trials=10, k=2)
    write_scores(scores, tmp_path / "s.parquet", model="m", observer="o")
    table = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert len(table) == 14 and table[0]["model"] == "m" and 0 <= table[0]["score"] <= 1
    summary = layer_summary(scores)
    assert [(r["layer"], r["units"]) for r in summary if r["query"] == "exemplar"] == [("L", 4), ("M", 3)]
    plot_scores(scores, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_stimuli(tmp_path_factory.mktemp("demo"), units_per_depth=3, size=32)


FAST = ["--observer", "efficientnet_lite0", "--feature-layer", "_blocks.1", "--trials", "30",
        "--group", "2", "--quiet"]


def test_score_cli_on_a_stimulus_set(demo, tmp_path, one_thread):
    result = CliRunner().invoke(main, ["experiment", "score", str(demo.root), *FAST, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(tmp_path / "scores.parquet").to_pylist()
    assert len(rows) == 18 and {r["query"] for r in rows} == {"visualization", "exemplar"}
    # demo units are hues: their noisy patches are told apart from other hues' by colour features
    exemplar = [r["score"] for r in rows if r["query"] == "exemplar"]
    assert sum(exemplar) / len(exemplar) > 0.8
    assert (tmp_path / "scores.png").is_file() and "median" in result.output


def test_score_cli_errors_exit_2(demo, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["experiment", "score", str(tmp_path / "nothing"), *FAST,
                                   "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    layer = runner.invoke(main, ["experiment", "score", str(demo.root), "--layers", "_blocks.99", *FAST,
                                 "--out", str(tmp_path / "o")])
    assert layer.exit_code == 2 and "no units of _blocks.99" in layer.output
    trials = runner.invoke(main, ["experiment", "score", str(demo.root), *FAST, "--trials", "0",
                                  "--out", str(tmp_path / "o")])
    assert trials.exit_code == 2 and "trials" in trials.output


def test_score_cli_takes_a_folder_with_a_mining_manifest_for_a_mining_run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text('{"format": 1, "status": "mining"}')
    result = CliRunner().invoke(main, ["experiment", "score", str(tmp_path / "run"), *FAST,
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "mining run" in result.output
