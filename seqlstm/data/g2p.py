"""Moved to `seqlstm.tasks.g2p`; this path is kept for one release.

Import from `seqlstm.tasks.g2p` instead: the G2P task, its evaluation hook and its scoring now
live in that one module.
"""

from seqlstm.tasks.g2p import *  # noqa: F403
from seqlstm.tasks.g2p import _cmudict_lexicon, _digest, _lexicon, _phone_ids  # noqa: F401
