"""Training from Parquet shards read in chunks: the same schema as fitting in memory, every row of a
rank's shard once per epoch, disjoint equal shards, and a model that learns from them."""
from __future__ import annotations

import math

import pytest
import torch

from models.asymdiffrec import build_model
from models.config import TrainConfig
from models.metrics import auc
from models.predict import predict_batch
from models.schema import FeatureSchema
from models.shards import ParquetShard, fit_schema_from_parquet
from models.train import train


@pytest.fixture(scope="module")
def train_file(dataset, tmp_path_factory):
    path = tmp_path_factory.mktemp("shards") / "train.parquet"
    dataset.train.to_parquet(path, index=False, row_group_size=700)  # several row groups, chunks cross none
    return path


def _rows(batch) -> list[tuple]:
    """Each encoded sample as a tuple, to compare multisets of rows."""
    flat = torch.cat([batch.single, batch.multi.flatten(1), batch.mask.long(), batch.label.long().unsqueeze(1)], dim=1)
    return sorted(map(tuple, flat.tolist()))


def test_schema_fitted_column_by_column_equals_the_in_memory_fit(dataset, train_file):
    want = FeatureSchema.fit(dataset.train, dataset.features)
    got = fit_schema_from_parquet(train_file, dataset.features, chunk_rows=500)
    assert got.to_json() == want.to_json()


@pytest.mark.parametrize("chunk_rows", [300, 1000])
def test_an_epoch_yields_every_row_of_the_shard_once_in_full_batches(dataset, train_file, schema, chunk_rows):
    shard = ParquetShard(train_file, schema, chunk_rows=chunk_rows)
    batches = list(shard.batches(256, torch.Generator().manual_seed(0)))
    assert len(batches) == shard.steps(256) == math.ceil(len(dataset.train) / 256)
    assert all(len(b) == 256 for b in batches[:-1])
    assert _rows(torch_cat(batches)) == _rows(schema.encode(dataset.train, with_label=True))


def test_epochs_are_shuffled_differently_and_reproducibly(train_file, schema):
    shard = ParquetShard(train_file, schema, chunk_rows=500)
    first = [b.single for b in shard.batches(128, torch.Generator().manual_seed(1))]
    again = [b.single for b in shard.batches(128, torch.Generator().manual_seed(1))]
    other = [b.single for b in shard.batches(128, torch.Generator().manual_seed(2))]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_ranks_read_disjoint_equal_shards(dataset, train_file, schema):
    shards = [ParquetShard(train_file, schema, rank=r, world_size=3, chunk_rows=400) for r in range(3)]
    n = len(dataset.train) // 3
    assert [len(s) for s in shards] == [n] * 3 and [s.steps(100) for s in shards] == [math.ceil(n / 100)] * 3
    parts = [torch_cat(list(s.batches(100, torch.Generator().manual_seed(0)))) for s in shards]
    whole = schema.encode(dataset.train.iloc[: 3 * n], with_label=True)
    assert sorted(sum((_rows(p) for p in parts), [])) == _rows(whole)
    with pytest.raises(ValueError, match="rank 3 is outside a world of 3"):
        ParquetShard(train_file, schema, rank=3, world_size=3)


def test_training_from_shards_learns(dataset, train_file, schema):
    valid = schema.encode(dataset.validation, with_label=True)
    model = build_model(schema, {"variant": "asymdiffrec"}, seed=0)
    shard = ParquetShard(train_file, schema, chunk_rows=600)
    result = train(model, shard, valid, TrainConfig(epochs=3, batch_size=128, lr=3e-3, progress=False, device="cpu"))
    assert result.best_val_auc > 0.6
    assert auc(valid.label.numpy(), predict_batch(model, valid, 1024)) == pytest.approx(result.best_val_auc)


def torch_cat(batches):
    from models.shards import concat

    return concat(batches)


def test_streamed_fit_decides_category_text_on_the_whole_column(tmp_path):
    """An integer category with nulls in one chunk only arrives as floats there and as ints elsewhere;
    its categories must still print as the in-memory fit prints them ("3", not "3.0")."""
    import numpy as np
    import pandas as pd

    rows = 1200
    frame = pd.DataFrame({
        "cat": pd.array([None] * 50 + list(np.arange(rows - 50) % 7), dtype="Int64"),
        "num": [np.nan] * 10 + list(np.linspace(0, 1, rows - 10)),
        "tags": [None] * 5 + [["a", "b"] if i % 3 else ["c"] for i in range(rows - 5)],
        "label": np.arange(rows) % 2,
    })
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False)
    features = [{"name": "cat", "view": "u", "kind": "categorical"}, {"name": "num", "view": "u", "kind": "numeric"},
                {"name": "tags", "view": "i", "kind": "multi"}]
    want = FeatureSchema.fit(pd.read_parquet(path), features)
    got = fit_schema_from_parquet(path, features, chunk_rows=100)
    assert got.to_json() == want.to_json()
    assert "3" in got.fields[0].vocab
