"""Tests for experiments/joint_sequence.py (the Phonetisaurus baseline): the training lexicon in
Phonetisaurus's format, its output parsed into predictions, the committed results re-scored, and
(when the `phonetisaurus` package is installed) a tiny real training."""

import json
import os

import pytest

from experiments import joint_sequence as js
from seqlstm.tasks import g2p as gs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "experiments", "results", "g2p")
LEXICON = {"read": [("R", "IY", "D"), ("R", "EH", "D")], "o'neil": [("OW", "N", "IY", "L")]}


def test_lexicon_lines_one_per_pronunciation(tmp_path):
    path = str(tmp_path / "train.lexicon")
    assert js.write_lexicon(path, LEXICON) == 3
    with open(path) as f:
        assert f.read() == "read\tR IY D\nread\tR EH D\no'neil\tOW N IY L\n"
    try:  # the package's own reader, as an oracle, when installed
        import phonetisaurus
    except ImportError:
        return
    with open(path) as f:
        assert dict(phonetisaurus.load_lexicon(f)) == {
            w: [list(p) for p in ps] for w, ps in LEXICON.items()
        }


def test_parse_predictions_keeps_each_words_best():
    # phonetisaurus-apply prints word<TAB>phones, or word<TAB>score<TAB>phones when verbose, and
    # a word's n-best hypotheses best first; a word it cannot pronounce gets no line.
    fake = ["read\tR IY D", "read\tR EH D", "", "o'neil\t12.51\tOW N IY L\n"]
    predicted = js.parse_predictions(fake)
    assert predicted == {"read": ["R", "IY", "D"], "o'neil": ["OW", "N", "IY", "L"]}
    preds = js.predictions_for(["read", "o'neil", "xyzzy"], predicted)
    assert preds[2] == []  # no line: an empty prediction, counted wrong
    s = gs.score(preds, [LEXICON["read"], LEXICON["o'neil"], [("Z", "IH", "Z", "IY")]])
    assert (s["wrong_words"], s["edits"], s["reference_phones"]) == (1, 4, 3 + 4 + 4)
    verbose = ["read\t1.5\tR IY D", "read\t2.25\tR EH D", "o'neil\t12.51\tOW N IY L"]
    assert js.parse_nbest(verbose) == {
        "read": [(["R", "IY", "D"], 1.5), (["R", "EH", "D"], 2.25)],
        "o'neil": [(["OW", "N", "IY", "L"], 12.51)],
    }
    with pytest.raises(ValueError, match="line 2 of the Phonetisaurus output"):
        js.parse_predictions(["read\tR IY D", "read R IY D"])


def test_committed_baseline_rescores_to_its_report():
    with open(os.path.join(RESULTS, "baseline.json")) as f:
        runs = {r["name"]: r for r in json.load(f)["runs"]}
    plain = runs["no_stress"]
    assert (plain["train_words"], plain["train_pronunciations"]) == (112272, 120199)
    s = gs.score_tsv(os.path.join(RESULTS, "baseline_test_predictions.tsv"))
    assert s == plain["test"] and s["words"] == 6418
    assert runs["stress"]["test"]["words"] == 6418
    table = js.markdown_table({"runs": list(runs.values())})
    assert f"| {100 * s['wer']:.2f} | {100 * s['per']:.2f} |" in table


def test_tiny_training_predicts(tmp_path):
    # Consonant-vowel-consonant words spelled one letter a phone, two held out, which the model
    # must spell out; a 3-gram (the default 8-gram needs longer words to estimate).
    pytest.importorskip("phonetisaurus")
    consonants = dict(b="B", d="D", k="K", m="M", n="N", p="P", s="S", t="T", g="G", l="L")
    vowels = dict(a="AE", i="IH", o="AA", u="AH", e="EH")
    lexicon = {
        c1 + v + c2: [[consonants[c1], vowels[v], consonants[c2]]]
        for c1 in consonants for v in vowels for c2 in consonants
    }  # fmt: skip
    held_out = {w: lexicon.pop(w)[0] for w in ("mog", "tup")}
    path = str(tmp_path / "train.lexicon")
    js.write_lexicon(path, lexicon)
    model, seconds = js.train(path, str(tmp_path), order=3)
    assert os.path.exists(model) and seconds > 0
    predicted, _ = js.apply(model, list(held_out), str(tmp_path))
    assert predicted == held_out
    nbest = js.apply_nbest(model, list(held_out), str(tmp_path), 3)
    assert set(nbest) == set(held_out)
    for word, hyps in nbest.items():  # best first, scored by negative log-probability
        assert hyps[0][0] == held_out[word] and 1 <= len(hyps) <= 3 and hyps[0][1] > 0
        assert all(a[1] <= b[1] for a, b in zip(hyps, hyps[1:]))
    with pytest.raises(RuntimeError, match="phonetisaurus-train failed .*Ngram model estimation"):
        js.write_lexicon(path, {"at": [["AE", "T"]]})
        js.train(path, str(tmp_path / "one_word"))
