"""AsymDiffRec in PyTorch: feature schema, base CTR models, the asymmetric diffusion, training, metrics.

Typical use:

    schema = fit_schema(train_df, features)                 # features: [{"name", "view", "kind"}, ...]
    model = build_model(schema, {"variant": "asymdiffrec", "base": "dnn"}, seed=0)
    result = train(model, schema.encode(train_df), schema.encode(valid_df), {"epochs": 10})
    probs = predict(model, schema, test_df)
    save_checkpoint("model/", model, schema, train_config)
    ckpt = load_checkpoint("model/")                        # ckpt.model, ckpt.schema, ...
"""
from models.asymdiffrec import AsymDiffRec, DropoutAugmented, GaussianDiffRec, Recommender, build_model
from models.base_models import BASE_MODELS, BaseModel, register
from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.config import VARIANTS, ModelConfig, TrainConfig
from models.data import Dataset, load_dataset
from models.diffusion import FeatureDropProcess, GaussianLatentSchedule, LatentReverseProcess
from models.metrics import all_metrics, auc, by_missing_count, logloss, robustness_curve, uauc
from models.predict import evaluate, predict, predict_batch
from models.schema import EncodedBatch, FeatureSchema, SchemaError, fit_schema
from models.train import TrainResult, fit, train

__all__ = [
    "AsymDiffRec", "BASE_MODELS", "BaseModel", "Checkpoint", "Dataset", "DropoutAugmented", "EncodedBatch",
    "FeatureDropProcess", "FeatureSchema", "GaussianDiffRec", "GaussianLatentSchedule", "LatentReverseProcess",
    "ModelConfig", "Recommender", "SchemaError", "TrainConfig", "TrainResult", "VARIANTS", "all_metrics", "auc",
    "build_model", "by_missing_count", "evaluate", "fit", "fit_schema", "load_checkpoint", "load_dataset", "logloss",
    "predict", "predict_batch", "register", "robustness_curve", "save_checkpoint", "train", "uauc",
]
