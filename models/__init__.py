"""Pure ML for photosearch: encoders, the model registry, checkpoints, training, evaluation.

Imports neither FastAPI nor SQL, so the indexer, the service and training all share it.
"""

from models.encoder import Encoder
from models.errors import ModelNotFoundError
from models.preprocess import PreprocessConfig
from models.registry import create_encoder, list_models, load_model_config

__all__ = [
    "Encoder",
    "ModelNotFoundError",
    "PreprocessConfig",
    "create_encoder",
    "list_models",
    "load_model_config",
]
