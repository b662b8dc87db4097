"""Moved to `seqlstm.tasks.seq2seq` (its hook to `seqlstm.tasks.hooks.decoding_accuracy`); this path
is kept for one release.
"""

from seqlstm.tasks.hooks import decoding_accuracy  # noqa: F401
from seqlstm.tasks.seq2seq import *  # noqa: F403
from seqlstm.tasks.seq2seq import _examples, _number  # noqa: F401
