"""The commands that use a trained run (experiments/pronounce.py, decode.py, sample.py, through
their flag-free modules): a run of another family, and what they are given, are refused in one
line before any model loads.

The workdirs here hold only a `config.json` (nothing is trained): a check that came after the
model loaded would meet "no checkpoints/" instead. The decoding itself is tested on the smoke runs
of tests/test_g2p.py and tests/test_seq2seq_train.py.
"""

import os

import pytest

from configs import chars, g2p, reverse, seq2seq
from experiments.commands import check_output, save_plot
from experiments.decoding import decode_inputs
from experiments.pronouncing import default_output, pronounce
from experiments.sampling import sample
from seqlstm.train import prepare_workdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`{family: workdir}`, each holding the config.json of a smoke run of that family."""
    out = {}
    for name, module in (("g2p", g2p), ("seq2seq", seq2seq), ("chars", chars), ("rev", reverse)):
        out[name] = str(tmp_path_factory.mktemp(name))
        prepare_workdir(module.get_config("smoke"), out[name])
    return out


def one_line(e) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


def test_decode_and_sample_on_another_family_name_the_command_that_serves_it(runs):
    # Before: decode on a G2P run raised AttributeError: 'task'; sample loaded the model first.
    with pytest.raises(ValueError) as e:
        decode_inputs(runs["g2p"], ["1 2"])
    assert one_line(e) == (
        f"workdir {runs['g2p']!r} holds a run of data task 'g2p' (model 'encoder_decoder'); "
        "experiments.decode serves runs of configs/seq2seq.py only: use python -m "
        f"experiments.pronounce --workdir={runs['g2p']}"
    )
    serves = "experiments.sample serves runs of configs/chars.py or configs/char_lm.py only"
    with pytest.raises(ValueError, match=f"{serves}: use python -m experiments.decode --workdir="):
        sample(runs["seq2seq"], "x", num_chars=1, temperature=1.0)
    with pytest.raises(ValueError) as e:
        pronounce(runs["chars"], ["hello"])
    message = one_line(e)
    assert "data task 'text' (model 'two_branch'); experiments.pronounce serves" in message
    assert message.endswith(f"use python -m experiments.sample --workdir={runs['chars']}")
    with pytest.raises(ValueError, match="data task 'reverse'.*no run command serves it"):
        decode_inputs(runs["rev"], ["1"])


def test_pronounce_checks_what_it_is_given_before_the_model_loads(runs, tmp_path):
    run = runs["g2p"]
    with pytest.raises(ValueError, match=r"^--batch_size must be a positive int, got 0$"):
        pronounce(run, ["hello"], batch_size=0)
    # Before: "'" was pronounced.
    with pytest.raises(ValueError, match=r"^word 2 \(\"'\"\): no letters; give words of "):
        pronounce(run, ["hello", "'"])
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError) as e:  # before: the decoder's message, not naming the file
        pronounce(run, [], words_file=str(latin1))
    assert one_line(e) == (
        f"--words_file={str(latin1)!r} is not UTF-8 text (byte 0xe9 at offset 3); save it as UTF-8"
    )
    words = tmp_path / "names.tsv"
    words.write_text("Hello\n")
    missing = tmp_path / "nope" / "out.tsv"
    # Before: the folder was found missing after all the decoding.
    with pytest.raises(ValueError, match=r"^--output='.*/nope/out.tsv': the folder '.*/nope' "
                       r"does not exist; create it"):  # fmt: skip
        pronounce(run, [], words_file=str(words), output=str(missing))
    with pytest.raises(ValueError, match=r"^--plot=.*/nope/a.png': the folder"):
        pronounce(run, ["hello"], plot=str(tmp_path / "nope" / "a.png"))
    for same in (str(words), os.path.join(str(tmp_path), ".", "names.tsv")):
        with pytest.raises(ValueError, match=r"is the input --words_file=.*refusing to write"):
            pronounce(run, [], words_file=str(words), output=same)
    assert words.read_text() == "Hello\n"
    # Before: the lexicon defaulted to the words file's name with a .tsv suffix: names.tsv itself.
    assert default_output(str(words)) == str(tmp_path / "names.phones.tsv")
    assert default_output("names") == "names.phones.tsv"
    with pytest.raises(ValueError, match="no checkpoints/"):  # every check passed: the load
        pronounce(run, ["Hello"], words_file=str(words))


def test_decode_checks_its_heatmap_folder_before_the_model_loads(runs, tmp_path):
    missing = str(tmp_path / "nope" / "h.png")
    with pytest.raises(ValueError, match=r"^--heatmap='.*/nope/h.png': the folder .* not exist"):
        decode_inputs(runs["seq2seq"], ["1 2"], heatmap_path=missing)
    with pytest.raises(ValueError, match=r"^--beam_size must be a positive int, got 0$"):
        decode_inputs(runs["seq2seq"], ["1 2"], beam_size=0)


def test_output_checks_and_plots_that_only_warn(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^--heatmap='.*' is a folder; give a file path$"):
        check_output(str(tmp_path), "--heatmap")
    link = tmp_path / "link.txt"
    (tmp_path / "in.txt").write_text("x")
    link.symlink_to(tmp_path / "in.txt")
    with pytest.raises(ValueError, match="is the input --words_file"):
        check_output(str(link), "--output", [("--words_file", str(tmp_path / "in.txt"))])
    check_output(str(tmp_path / "new.tsv"), "--output", [("--words_file", str(link))])

    def draw(path):
        with open(path, "w") as f:
            f.write("png")

    blocked = tmp_path / "attention.png"
    blocked.mkdir()  # as a read-only workdir (and root, who may write anywhere) would fail
    assert not save_plot(draw, str(blocked), "attention heat-map")
    err = capsys.readouterr().err
    assert err.startswith(f"warning: cannot write the attention heat-map {blocked} (Is a dir")
    assert err.count("\n") == 1
    assert save_plot(draw, str(tmp_path / "ok.png"), "plot")
