"""Reading text corpora: files and folders, the vocabulary, splits by document or region, windows.

A corpus is every text file under a path (or one file). With no path it is the Python standard
library's own source (`sysconfig.get_paths()["stdlib"]`, `*.py`, tests and installed packages
left out): about 12 MB of real text, present wherever seqlstm runs, downloaded from nowhere.

Splits are disjoint stretches of ids, so no window can cross from training into validation:

* `split="document"`: whole files go to validation and test (chosen by a fixed shuffle of the
  sorted file list until each holds its fraction of the characters), the rest to training;
* `split="region"`: the concatenated corpus is cut into train | validation | test regions;
* `split="auto"`: by document when there are at least `MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT` files.

A split's windows are a zero-copy strided view of its ids (`windows`): window i starts at
`i * stride` and holds `context` input ids and the target(s). Only the rows of a batch are ever
gathered, so a [num_windows, context] copy is never made. Splits are dicts of such arrays with the
contract of `seqlstm.task` (`inputs`, `targets`, `mask`), so the same batching and training loop
serve every task (the `"text"` task of `seqlstm.tasks.text` is built from them):

  inputs:  int[n, context]             ids of the window
  targets: int[n, 1]                   targets="next": the id after the window
           int[n, context]             targets="every": the window shifted by one (a language model)
  mask:    bool[n, 1] / bool[n, context], all True (a read-only broadcast, no memory)
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import os
import sysconfig

import numpy as np

from seqlstm.checks import check_int

LEVELS = ("char", "byte")
SPLITS = ("auto", "document", "region")
TARGETS = ("next", "every")
MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT = 20
# Directories never read: caches, VCS metadata (any hidden directory), installed packages.
SKIP_DIRS = frozenset({"__pycache__", "site-packages", "dist-packages", "node_modules"})
# The default corpus is the standard library's own code, not its test suite (which holds
# deliberately malformed and non-UTF-8 files).
STDLIB_SKIP_DIRS = SKIP_DIRS | {"test", "tests", "idle_test"}
UNK = "\ufffd"  # how an out-of-vocabulary id decodes


def stdlib_dir() -> str:
    """The directory of the Python standard library's source, the built-in default corpus."""
    return sysconfig.get_paths()["stdlib"]


def list_documents(path: str = "", pattern: str = "") -> list[str]:
    """The files of a corpus, sorted: `path` itself if it is a file, else the files under it.

    Args:
      path: a text file or a folder; "" is the standard library (`stdlib_dir()`).
      pattern: a glob on file names (`"*.py"`); "" means `"*.py"` for the standard library and
        every file otherwise. Hidden files and directories, `__pycache__` and installed-package
        directories are skipped.

    Returns:
      Absolute file paths, sorted, so a corpus is read in the same order on every machine.

    Raises:
      ValueError: if `path` does not exist.
    """
    stdlib = not path
    root = stdlib_dir() if stdlib else os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(root):
        raise ValueError(
            f"data.path {path!r} does not exist; give a text file or a folder of text files, "
            "or leave data.path empty for the built-in standard-library corpus"
        )
    if os.path.isfile(root):
        return [root]
    pattern = pattern or ("*.py" if stdlib else "*")
    skip = STDLIB_SKIP_DIRS if stdlib else SKIP_DIRS
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip and not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and fnmatch.fnmatch(name, pattern):
                full = os.path.join(dirpath, name)
                if os.path.isfile(full):
                    files.append(full)
    return sorted(files)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Maps text to ids and back.

    `level="byte"`: ids are the 256 byte values of the UTF-8 encoding.
    `level="char"`: id 0 is the unknown character; ids 1.. are `chars`, the most frequent
    characters of the training split (ties broken by code point).

    Attributes:
      level: `"char"` or `"byte"`.
      chars: the known characters in id order from 1 (empty for bytes).
    """

    level: str
    chars: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return 256 if self.level == "byte" else len(self.chars) + 1

    @functools.cached_property
    def _table(self) -> dict[str, int]:
        return {c: i + 1 for i, c in enumerate(self.chars)}

    def encode(self, text: str, *, strict: bool = True, what: str = "text") -> np.ndarray:
        """`text` as `int32[len]` ids.

        Args:
          text: the string to encode.
          strict: raise for characters outside the vocabulary (else they become id 0).
          what: how to name `text` in the error.

        Raises:
          ValueError: with `strict`, naming the characters outside the vocabulary.
        """
        if self.level == "byte":
            return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)
        table = self._table
        unknown = sorted({c for c in text if c not in table})
        if unknown and strict:
            shown = ", ".join(repr(c) for c in unknown[:10])
            raise ValueError(
                f"{what} has {len(unknown)} character(s) outside the model's vocabulary of "
                f"{self.size - 1} characters: {shown}. Remove them, or train with a larger "
                "data.vocab_size or data.level='byte'."
            )
        return np.fromiter((table.get(c, 0) for c in text), np.int32, count=len(text))

    def decode(self, ids) -> str:
        """Ids back to text (unknown ids and invalid UTF-8 as U+FFFD)."""
        ids = np.asarray(ids).reshape(-1)
        if self.level == "byte":
            return ids.astype(np.uint8).tobytes().decode("utf-8", errors="replace")
        chars = (UNK,) + self.chars
        # A model has `vocab_size` outputs even when the corpus has fewer distinct characters.
        return "".join(chars[i] if 0 <= i < len(chars) else UNK for i in ids.tolist())


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A corpus as ids, split three ways.

    Attributes:
      vocab: the `Vocabulary`.
      train, val, test: `int32` ids of each split (disjoint stretches of the corpus).
      documents: number of files read.
      split: how it was split, `"document"` or `"region"`.
      train_starts: `int64[k]`, where each file (or its part) in `train` begins, from 0.
    """

    vocab: Vocabulary
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    documents: int
    split: str
    train_starts: np.ndarray | None = None


def _read(path: str, level: str) -> str | bytes:
    with open(path, "rb") as f:
        raw = f.read()
    return raw if level == "byte" else raw.decode("utf-8", errors="replace")


def _code_points(parts: list[str]) -> np.ndarray:
    text = "".join(parts)
    return np.frombuffer(text.encode("utf-32-le"), np.uint32)


def _split_documents(sizes: list[int], val_fraction: float, test_fraction: float) -> np.ndarray:
    """0 (train), 1 (val) or 2 (test) per document: documents taken in a fixed shuffled order
    fill validation, then test, each up to its fraction of all characters (at least one file)."""
    total = sum(sizes)
    which = np.zeros(len(sizes), np.int8)
    order = np.random.default_rng(0).permutation(len(sizes))
    pos = 0
    for label, fraction in ((1, val_fraction), (2, test_fraction)):
        got = 0
        while fraction > 0 and pos < len(order) and (got == 0 or got < fraction * total):
            which[order[pos]] = label
            got += sizes[order[pos]]
            pos += 1
    return which


@functools.lru_cache(maxsize=4)
def load_corpus(
    path: str = "",
    *,
    pattern: str = "",
    level: str = "char",
    vocab_size: int = 100,
    split: str = "auto",
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    max_chars: int = 0,
) -> Corpus:
    """Reads, splits and encodes a corpus.

    Cached by argument values, so a study reads it once per process (files changed afterwards
    are not re-read in that process).

    Args:
      path, pattern: which files, see `list_documents`.
      level: `"char"` (Unicode characters, UTF-8 decoded with replacement) or `"byte"`.
      vocab_size: ids in the vocabulary: the `vocab_size - 1` most frequent training characters
        and the unknown id 0 (`"char"`), or 256 (`"byte"`, which requires 256).
      split: `"auto"`, `"document"` or `"region"` (module docstring).
      val_fraction, test_fraction: shares of the characters held out, in (0, 0.5).
      max_chars: read files in order until this many characters (0: all).

    Returns:
      The `Corpus`.

    Raises:
      ValueError: for a missing or empty path, or a bad argument, naming the config key.
    """
    if level not in LEVELS:
        raise ValueError(f"data.level must be one of {LEVELS}, got {level!r}")
    if split not in SPLITS:
        raise ValueError(f"data.split must be one of {SPLITS}, got {split!r}")
    check_int("data.vocab_size", vocab_size, 2)
    if level == "byte" and vocab_size != 256:
        raise ValueError(f"data.level='byte' needs data.vocab_size=256, got {vocab_size}")
    check_int("data.max_chars", max_chars, 0)
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, (int, float)) or not 0 < value < 0.5:
            raise ValueError(f"data.{name} must be in (0, 0.5), got {value!r}")
    files = list_documents(path, pattern)
    where = f"data.path {path!r}" if path else f"the standard library at {stdlib_dir()!r}"
    parts = []
    total = 0
    for f in files:
        part = _read(f, level)
        if max_chars:
            part = part[: max_chars - total]
        if part:
            parts.append(part)
            total += len(part)
        if max_chars and total >= max_chars:
            break
    if total == 0:
        raise ValueError(
            f"the corpus at {where} is empty ({len(files)} files matching "
            f"{pattern or 'the default pattern'!r}, 0 characters); point data.path at text"
        )
    if split == "auto":
        split = "document" if len(parts) >= MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT else "region"
    sizes = np.array([len(p) for p in parts], np.int64)
    if split == "document":
        if len(parts) < 3:
            raise ValueError(
                f"data.split='document' needs at least 3 files, {where} has {len(parts)}; "
                "use data.split='region'"
            )
        which = _split_documents([len(p) for p in parts], val_fraction, test_fraction)
        groups = [[p for p, w in zip(parts, which) if w == k] for k in range(3)]
        train_sizes = sizes[which == 0]
    else:
        whole = b"".join(parts) if level == "byte" else "".join(parts)
        a = int(round(total * (1 - val_fraction - test_fraction)))
        b = int(round(total * (1 - test_fraction)))
        groups = [[whole[:a]], [whole[a:b]], [whole[b:]]]
        train_sizes = np.diff(np.minimum(np.concatenate([[0], np.cumsum(sizes)]), a))
        train_sizes = train_sizes[train_sizes > 0]

    if level == "byte":
        vocab = Vocabulary("byte")
        ids = [np.frombuffer(b"".join(g), np.uint8).astype(np.int32) for g in groups]
    else:
        points = [_code_points(g) for g in groups]
        counts = np.bincount(points[0]) if points[0].size else np.zeros(1, np.int64)
        present = np.nonzero(counts)[0]
        # Most frequent first; ties by code point (a stable sort of the ascending code points).
        keep = present[np.argsort(-counts[present], kind="stable")][: vocab_size - 1]
        vocab = Vocabulary("char", tuple(chr(int(c)) for c in keep))
        lookup = np.zeros(int(max(p.max(initial=0) for p in points)) + 1, np.int32)
        lookup[keep[keep < lookup.size]] = np.arange(1, keep.size + 1, dtype=np.int32)
        ids = [lookup[p] for p in points]
    for a in ids:
        a.setflags(write=False)  # shared through the cache
    train_starts = np.concatenate([[0], np.cumsum(train_sizes)[:-1]]).astype(np.int64)
    train_starts.setflags(write=False)
    return Corpus(vocab, *ids, documents=len(parts), split=split, train_starts=train_starts)


def windows(
    ids: np.ndarray, context: int, *, stride: int = 1, targets: str = "next", name: str = "split"
) -> dict[str, np.ndarray]:
    """The strided windows of `ids` as a split dict of zero-copy views (module docstring).

    Window i reads `ids[i * stride : i * stride + context + 1]`: `context` inputs and, after
    them, the next id (`targets="next"`) or all inputs shifted by one (`targets="every"`).

    Args:
      ids: `int[length]`, one split's ids.
      context: input ids per window.
      stride: distance between window starts.
      targets: `"next"` or `"every"`.
      name: the split's name, for the error.

    Returns:
      `{"inputs", "targets", "mask"}`, read-only views sharing memory with `ids`.

    Raises:
      ValueError: for a non-positive context or stride, or `ids` shorter than one window.
    """
    check_int("data.context", context)
    check_int("data.stride", stride)
    if targets not in TARGETS:
        raise ValueError(f"data.targets must be one of {TARGETS}, got {targets!r}")
    if ids.shape[0] < context + 1:
        raise ValueError(
            f"the {name} split has {ids.shape[0]} characters, shorter than one window "
            f"(data.context + 1 = {context + 1}); use a longer corpus, a larger split fraction "
            "or a smaller data.context"
        )
    view = np.lib.stride_tricks.sliding_window_view(ids, context + 1)[::stride]
    n = view.shape[0]
    if targets == "next":
        target = view[:, context:]
    else:
        target = view[:, 1:]
    return {
        "inputs": view[:, :context],
        "targets": target,
        "mask": np.broadcast_to(np.ones((1, 1), bool), (n, target.shape[1])),
    }


def spread_stride(length: int, context: int, num_windows: int) -> int:
    """The stride giving about `num_windows` windows spread over `length` ids (at least 1)."""
    return max(1, (length - context - 1) // max(num_windows - 1, 1))
