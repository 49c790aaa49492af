"""The training engine: :func:`train`, checkpoints, the per-batch step shared with prediction."""

from voxelflex.engine.checkpoint import Checkpoint, CheckpointMeta, load_for_inference
from voxelflex.engine.step import predict_batch
from voxelflex.engine.trainer import TrainResult, read_history, train

__all__ = [
    "Checkpoint",
    "CheckpointMeta",
    "TrainResult",
    "load_for_inference",
    "predict_batch",
    "read_history",
    "train",
]
