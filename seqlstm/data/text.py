"""Moved: corpus reading to `seqlstm.data.corpus`, the `"text"` task (`make_text_task`,
`task_vocabulary`) to `seqlstm.tasks.text`; this path is kept for one release.
"""

from seqlstm.data.corpus import *  # noqa: F403
from seqlstm.data.corpus import _code_points, _read, _split_documents  # noqa: F401
from seqlstm.tasks.text import make_text_task, task_vocabulary  # noqa: F401
