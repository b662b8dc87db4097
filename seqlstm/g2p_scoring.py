"""Moved to `seqlstm.tasks.g2p` (its scoring section); this path is kept for one release.

Import `edit_distance`, `closest_reference`, `score`, `prediction_rows`, `write_predictions`,
`score_tsv`, `TSV_HEADER` and `PREDICTIONS` from `seqlstm.tasks.g2p` instead.
"""

from seqlstm.tasks.g2p import (  # noqa: F401
    PREDICTIONS,
    TSV_HEADER,
    closest_reference,
    edit_distance,
    prediction_rows,
    score,
    score_tsv,
    write_predictions,
)
