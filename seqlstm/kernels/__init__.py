"""Backends of the LSTM recurrence beyond the scan: the native CPU kernel and the rule that
picks it (`seqlstm.kernels.native`, `seqlstm.kernels.rule`)."""
