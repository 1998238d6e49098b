"""Psychophysics: trial design, storage, analysis and stimulus sets (no server, no browser)."""

from __future__ import annotations

import csv
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from phosphene.cli.app import main
from phosphene.errors import PhospheneError
from phosphene.psychophysics import analysis
from phosphene.psychophysics import stimuli as st
from phosphene.psychophysics.observer import best_assignment
from phosphene.psychophysics.storage import RESPONSE_COLUMNS, ExperimentDB, rows_to_csv
from phosphene.psychophysics.trials import design

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> st.StimulusSet:
    return st.demo_stimuli(tmp_path_factory.mktemp("demo"), units_per_depth=4)


# -- trials ---------------------------------------------------------------------------------------
def test_design_gives_every_condition_the_same_number_of_trials(demo):
    trials = design(demo, trials_per_condition=6, catch_trials=3, seed=1)
    counts = Counter((t.kind, t.depth, t.images_per_unit) for t in trials if not t.catch)
    assert set(counts.values()) == {6}
    assert len(counts) == 2 * 3 * 3
    assert sum(t.catch for t in trials) == 3
    assert [t.index for t in trials] == list(range(len(trials)))


def test_design_rotates_all_six_answers_through_each_condition(demo):
    trials = design(demo, trials_per_condition=6, seed=2)
    by_condition: dict[tuple, set] = {}
    for t in trials:
        if not t.catch:
            by_condition.setdefault((t.kind, t.depth, t.images_per_unit), set()).add(t.answer)
    assert all(answers == set(itertools.permutations(range(3))) for answers in by_condition.values())


def test_design_uses_units_of_a_depth_evenly(demo):
    trials = design(demo, trials_per_condition=4, seed=3)
    for depth in st.DEPTHS:
        uses = Counter(u for t in trials if t.depth == depth and not t.catch for u in t.units)
        assert len(uses) == 4 and max(uses.values()) - min(uses.values()) <= 1
    assert all(len(set(t.units)) == 3 for t in trials)
    assert all(len({u.split(":")[0] for u in t.units}) == 1 for t in trials)  # one layer per trial


def test_design_is_reproducible_from_the_seed(demo):
    first = [t.to_dict() for t in design(demo, seed=7)]
    assert first == [t.to_dict() for t in design(demo, seed=7)]
    assert first != [t.to_dict() for t in design(demo, seed=8)]


def test_trial_images_follow_the_trial_type(demo):
    units = {u.id: u for u in demo.units}
    for t in design(demo, trials_per_condition=3, catch_trials=3, seed=4):
        for q, row in enumerate(t.answer):
            unit = units[t.units[row]]
            assert set(t.references[row]) <= set(unit.natural)
            assert len(t.references[row]) == len(t.queries[q]) == t.images_per_unit
            if t.kind == "exemplar":
                assert set(t.queries[q]) <= set(unit.natural)
                assert not set(t.queries[q]) & set(t.references[row])
            elif t.kind == "visualization":
                assert set(t.queries[q]) <= set(unit.visualizations)
            else:
                assert t.queries[q] == t.references[row]


def test_public_trial_hides_answer_and_units(demo):
    trial = design(demo, seed=0)[0]
    public = trial.public()
    assert set(public) == {"index", "images_per_unit", "references", "queries"}
    assert "demo" not in json.dumps(public)


def test_design_rejects_too_few_units_or_images(tmp_path):
    small = st.demo_stimuli(tmp_path / "a", units_per_depth=2)
    with pytest.raises(PhospheneError, match="needs 3"):
        design(small)
    few = st.demo_stimuli(tmp_path / "b", naturals=6)
    with pytest.raises(PhospheneError, match="need 10"):
        design(few)
    design(few, images_per_unit=(1, 3))  # 6 naturals are enough for 3 per unit


def test_score_counts_items_matched():
    from phosphene.psychophysics.trials import Trial

    trial = Trial(0, "exemplar", "early", "l", 1, ("a", "b", "c"), (("x",),) * 3, (("y",),) * 3, (2, 0, 1))
    assert trial.score((2, 0, 1)) == 3
    assert trial.score((2, 1, 0)) == 1
    assert trial.score((0, 1, 2)) == 0


# -- observer's assignment ---------------------------------------------------------------------------
def test_best_assignment_is_optimal_where_greedy_is_not():
    similarity = torch.tensor([[0.9, 0.8, 0.0], [0.8, 0.0, 0.0], [0.0, 0.0, 0.5]])
    assert best_assignment(similarity) == (1, 0, 2)
    assert best_assignment(torch.eye(3)) == (0, 1, 2)


# -- storage -----------------------------------------------------------------------------------------
def _row(session: str, trial: int, assignment: str = "0 1 2", response_id: str = "r") -> dict:
    return {"source": "human", "session": session, "participant": 0, "trial": trial, "kind": "exemplar",
            "depth": "early", "layer": "l", "images_per_unit": 1, "units": "a|b|c", "answer": "0 1 2",
            "assignment": assignment, "correct": 3, "items": 3, "rt_ms": 12.5, "response_id": response_id}


def test_storage_uses_wal_and_stores_a_response_once(tmp_path):
    db = ExperimentDB(tmp_path / "x.sqlite")
    with db.connect() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    session, token, participant = db.create_session(lambda p: (p, [{"index": 0}]))
    assert participant == 0 and len(token) >= 40 and db.session(session)["token_sha256"] != token
    assert db.add_response(_row(session, 0))[0] == "created"
    assert db.add_response(_row(session, 0))[0] == "duplicate"
    assert db.add_response(_row(session, 0, "1 0 2", "other"))[0] == "conflict"
    assert len(db.responses()) == 1 and db.responses()[0]["assignment"] == "0 1 2"
    assert db.create_session(lambda p: (p, []))[2] == 1


# -- analysis ----------------------------------------------------------------------------------------
def test_wilson_interval_has_the_closed_form_at_the_extremes():
    z2 = 1.96 ** 2
    assert analysis.wilson(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert analysis.wilson(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    for total in range(1, 60):  # the interval always contains the estimate (no float slip at 0 or 1)
        for correct in (0, total):
            low, high = analysis.wilson(correct, total)
            assert low <= correct / total <= high
    low, high = analysis.wilson(30, 60)
    assert low < 0.5 < high and high - low < analysis.wilson(5, 10)[1] - analysis.wilson(5, 10)[0]


def _rows(source: str) -> list[dict]:
    rows = []
    for kind, depth, n, correct in [("exemplar", "early", 1, 3), ("exemplar", "early", 1, 1),
                                    ("visualization", "late", 3, 0), ("catch", "early", 1, 3)]:
        rows.append({**_row("s", len(rows)), "source": source, "kind": kind, "depth": depth,
                     "images_per_unit": n, "correct": correct})
    return rows


def test_summarize_gives_item_accuracy_per_condition():
    conditions = {(c.kind, c.depth, c.images_per_unit): c for c in analysis.summarize(_rows("human"))}
    early = conditions["exemplar", "early", 1]
    assert (early.trials, early.correct, early.items) == (2, 4, 6)
    assert early.accuracy == pytest.approx(4 / 6)
    assert (early.low, early.high) == pytest.approx(analysis.wilson(4, 6))
    assert conditions["visualization", "late", 3].accuracy == 0
    assert conditions["catch", "early", 1].accuracy == 1


def test_analyze_reads_csv_and_database_alike_and_plots(tmp_path):
    human = tmp_path / "human.csv"
    human.write_text(rows_to_csv(_rows("human")))
    machine = tmp_path / "machine.csv"
    machine.write_text(rows_to_csv(_rows("machine:x")))
    db = ExperimentDB(tmp_path / "h.sqlite")
    session, _, _ = db.create_session(lambda p: (p, []))
    for row in _rows("human"):
        db.add_response({**row, "session": session})
    from_db = analysis.summarize(analysis.load_responses(tmp_path / "h.sqlite"))
    assert [c.to_dict() for c in from_db] == [c.to_dict() for c in analysis.summarize(_rows("human"))]
    conditions = analysis.analyze([human, machine], tmp_path / "out")
    assert {c.source for c in conditions} == {"human", "machine:x"}
    with (tmp_path / "out" / "summary.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(conditions)
    png = (tmp_path / "out" / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_load_responses_rejects_other_csvs(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(PhospheneError, match="missing columns"):
        analysis.load_responses(bad)
    with pytest.raises(PhospheneError, match="no such"):
        analysis.load_responses(tmp_path / "none.csv")


# -- stimulus sets -----------------------------------------------------------------------------------
def test_stimulus_set_round_trips_and_checks_its_images(demo, tmp_path):
    loaded = st.StimulusSet.load(demo.root)
    assert [u.id for u in loaded.units] == [u.id for u in demo.units]
    assert all(Path(p).name.count(".") == 1 and len(Path(p).stem) == 12 for p in loaded.image_paths())
    with pytest.raises(PhospheneError, match="missing manifest.json"):
        st.StimulusSet.load(tmp_path)
    broken = st.demo_stimuli(tmp_path / "broken")
    (broken.root / broken.units[0].natural[0]).unlink()
    with pytest.raises(PhospheneError, match="1 stimulus images missing"):
        st.StimulusSet.load(broken.root)


def test_distinct_exemplars_never_share_an_image_within_a_layer():
    ranked = {("l", 0): [("a", 9.0), ("b", 8.0), ("c", 1.0)], ("l", 1): [("a", 7.0), ("b", 6.0), ("d", 5.0)]}
    chosen = st.distinct_exemplars(ranked, {"l": [0, 1]}, 2)
    assert chosen[("l", 0)] == [("a", 9.0), ("c", 1.0)]
    assert chosen[("l", 1)] == [("b", 6.0), ("d", 5.0)]
    with pytest.raises(PhospheneError, match="not enough distinct"):
        st.distinct_exemplars(ranked, {"l": [0, 1]}, 3)


def test_depth_layers_split_the_block_list_in_tertiles(model):
    assert st.block_layers(model) == [f"_blocks.{i}" for i in range(16)]
    assert st.depth_layers(model) == {"early": "_blocks.2", "middle": "_blocks.7", "late": "_blocks.13"}
    units = st.pick_units(model, st.depth_layers(model), 5, seed=0)
    assert units == st.pick_units(model, st.depth_layers(model), 5, seed=0)
    assert all(len(set(u)) == 5 for u in units.values()) and max(units["_blocks.2"]) < 24


# -- CLI ---------------------------------------------------------------------------------------------
def test_cli_trials_prints_the_participants_design(demo):
    result = CliRunner().invoke(main, ["experiment", "trials", str(demo.root), "--trials-per-condition",
                                       "1", "--participant", "3", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 2 * 3 * 3 + 2


def test_cli_analyze_writes_summary_and_plot(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(rows_to_csv(_rows("human")))
    result = CliRunner().invoke(main, ["experiment", "analyze", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "| human | exemplar | early | 1 | 2 | 0.667 |" in result.output
    assert (tmp_path / "o" / "accuracy.png").is_file()
    assert list(csv.DictReader((tmp_path / "o" / "summary.csv").open()))[0]["accuracy"] == "0.6667"


def test_cli_rejects_bad_input_in_one_line(demo, tmp_path):
    runner = CliRunner()
    both = runner.invoke(main, ["experiment", "stimuli", "--run", "r", "--images", "i", "--out", "o"])
    assert both.exit_code == 2 and "exactly one of --run" in both.output
    missing = runner.invoke(main, ["experiment", "simulate", str(tmp_path), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "missing manifest.json" in missing.output
    counts = runner.invoke(main, ["experiment", "trials", str(demo.root), "--images-per-unit", "1,x"])
    assert counts.exit_code == 2 and "images per unit" in counts.output
    short = runner.invoke(main, ["experiment", "serve", str(demo.root), "--admin-token", "short"])
    assert short.exit_code == 2 and "16 characters" in short.output


def test_response_columns_are_the_export_header():
    assert rows_to_csv([]).strip().split(",") == list(RESPONSE_COLUMNS)


def test_gap_table_gives_exemplar_minus_visualization_accuracy():
    rows = [{**_row("s", i), "kind": kind, "depth": "late", "images_per_unit": 3, "correct": correct}
            for i, (kind, correct) in enumerate([("exemplar", 3), ("exemplar", 2), ("visualization", 1),
                                                 ("visualization", 1)])]
    table = analysis.gap_table(analysis.summarize(rows))
    assert "| human | late | +0.500 | +0.500 |" in table  # 5/6 - 2/6
    assert "early" not in table


def test_cli_export_writes_the_database_as_csv(tmp_path):
    db = ExperimentDB(tmp_path / "e.sqlite")
    session, _, _ = db.create_session(lambda p: (p, []))
    for row in _rows("human"):
        db.add_response({**row, "session": session})
    out = tmp_path / "e.csv"
    result = CliRunner().invoke(main, ["experiment", "export", str(tmp_path / "e.sqlite"), "--out", str(out)])
    assert result.exit_code == 0 and "4 responses" in result.output
    exported = list(csv.DictReader(out.open()))
    assert [r["kind"] for r in exported] == ["exemplar", "exemplar", "visualization", "catch"]
    assert all(r["session"] == session for r in exported)
    missing = CliRunner().invoke(main, ["experiment", "export", str(tmp_path / "no.db"), "--out", "x.csv"])
    assert missing.exit_code == 2 and "no such database" in missing.output


def test_cli_analyze_labels_two_files_of_one_observer_as_two_sources(tmp_path):
    """units=A atoms=B: one machine observer on two stimulus sets becomes two sources side by side."""
    units, atoms = tmp_path / "units.csv", tmp_path / "a=b.csv"  # a real file with '=' stays a path
    units.write_text(rows_to_csv(_rows("machine:x")))
    atoms.write_text(rows_to_csv(_rows("machine:x")))
    result = CliRunner().invoke(main, ["experiment", "analyze", f"units={units}", str(atoms),
                                       f"atoms={atoms}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    sources = {row["source"] for row in csv.DictReader((tmp_path / "o" / "summary.csv").open())}
    assert sources == {"units", "atoms", "machine:x"}
    empty = CliRunner().invoke(main, ["experiment", "analyze", f"={units}", "--out", str(tmp_path / "e")])
    assert empty.exit_code == 2 and "empty label" in empty.output


def test_plot_gives_each_of_four_sources_its_own_colour(tmp_path):
    """units, kmeans, nmf, topk: a colour per source, solid exemplars, dashed visualizations; two
    sources keep a colour per trial kind."""
    looks = {(si, kind): analysis.line_look(si, kind, 4) for si in range(4)
             for kind in ("exemplar", "visualization")}
    assert len({look["color"] for look in looks.values()}) == 4
    assert all(looks[si, "exemplar"]["color"] == looks[si, "visualization"]["color"] for si in range(4))
    assert {looks[si, "exemplar"]["linestyle"] for si in range(4)} == {"-"}
    assert {looks[si, "visualization"]["linestyle"] for si in range(4)} == {"--"}
    two = [analysis.line_look(si, kind, 2) for si in range(2) for kind in ("exemplar", "visualization")]
    assert two[0]["color"] == two[2]["color"] != two[1]["color"]
    assert two[0]["linestyle"] != two[2]["linestyle"]
    paths = []
    for label in ("units", "kmeans", "nmf", "topk"):
        paths.append(tmp_path / f"{label}.csv")
        paths[-1].write_text(rows_to_csv(_rows("machine")))
    result = CliRunner().invoke(main, ["experiment", "analyze", *[f"{p.stem}={p}" for p in paths],
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    sources = {row["source"] for row in csv.DictReader((tmp_path / "o" / "summary.csv").open())}
    assert sources == {"units", "kmeans", "nmf", "topk"}
    assert (tmp_path / "o" / "accuracy.png").stat().st_size > 0
