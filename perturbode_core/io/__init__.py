"""Files in and out: ``.h5ad`` reading (``h5ad``), checkpoints (``checkpoint``), edge tables
(``edges``), and the one input-file check and atomic writes (``files``)."""
