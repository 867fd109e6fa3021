import pytest
import torch

from models.schema import FeatureSchema
from models.toy_dataset import make_synthetic_dataset


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def dataset():
    return make_synthetic_dataset(n_events=3000, seed=0)


@pytest.fixture(scope="session")
def schema(dataset):
    return FeatureSchema.fit(dataset.train, dataset.features)
