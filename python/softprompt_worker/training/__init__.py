"""Training: the loop (``loop``), its resumable state (``resume``), the run directory (``runs``), model
selection and early stopping (``selection``), experiment trackers (``trackers``), and the protobuf
checkpoints a run writes and inference loads (``checkpoints``)."""
