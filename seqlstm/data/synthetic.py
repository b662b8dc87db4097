"""Moved to `seqlstm.tasks.reverse`; this path is kept for one release.

Import `make_reverse_task`, `reversed_sequences` and `one_hot` from `seqlstm.tasks.reverse`.
"""

from seqlstm.tasks.reverse import make_reverse_task, one_hot, reversed_sequences  # noqa: F401
