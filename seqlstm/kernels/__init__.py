"""Backends of the LSTM recurrence beyond the scan and the rule that picks one: the backend
choice (`seqlstm.kernels.backends`), the native CPU kernel (`seqlstm.kernels.native`) and its
measured threshold (`seqlstm.kernels.rule`)."""
