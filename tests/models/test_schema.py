import numpy as np
import pandas as pd
import pytest
import torch

from models.schema import MISSING, OOV, FeatureSchema, SchemaError


def test_encode_shapes_and_reserved_ids(dataset, schema):
    batch = schema.encode(dataset.train)
    n = len(dataset.train)
    assert batch.single.shape == (n, len(schema.single_fields)) and batch.single.dtype == torch.int64
    assert batch.multi.shape[:2] == (n, len(schema.multi_fields)) and batch.multi.dtype == torch.int64
    assert batch.mask.shape == (n, schema.n_fields) and batch.mask.dtype == torch.bool
    assert batch.label.dtype == torch.float32 and batch.user.dtype == torch.int64
    # Missing values get the reserved id; observed ones never do.
    for j, i in enumerate(schema.single_fields):
        assert torch.equal(batch.single[:, j] == MISSING, batch.mask[:, i])
    for j, i in enumerate(schema.multi_fields):
        assert torch.equal((batch.multi[:, j] > 0).sum(1) == 0, batch.mask[:, i])


def test_only_listed_features_are_read(dataset, schema):
    frame = dataset.test.drop(columns=[c for c in dataset.test.columns if c.startswith("missing")])
    assert torch.equal(schema.encode(frame).mask, schema.encode(dataset.test).mask)
    assert schema.names == [f["name"] for f in dataset.features]


def test_null_nan_none_and_empty_list_are_missing(dataset, schema):
    row = dataset.train.iloc[:4].copy()
    cat = next(f.name for f in schema.fields if f.kind == "categorical")
    num = next(f.name for f in schema.fields if f.kind == "numeric")
    multi = next(f.name for f in schema.fields if f.kind == "multi")
    row[cat] = [None, np.nan, "x", pd.NA]
    row[num] = [np.nan, None, 1.0, 2.0]
    row[multi] = [[], None, ["Drama"], np.array([], dtype=object)]
    mask = schema.missing_mask(row)
    assert mask[:, schema.names.index(cat)].tolist() == [True, True, False, True]
    assert mask[:, schema.names.index(num)].tolist() == [True, True, False, False]
    assert mask[:, schema.names.index(multi)].tolist() == [True, True, False, True]


def test_unknown_category_maps_to_oov(dataset, schema):
    frame = dataset.test.iloc[:3].copy()
    cat = next(f.name for f in schema.fields if f.kind == "categorical")
    multi = next(f.name for f in schema.fields if f.kind == "multi")
    frame[cat] = "never-seen-value"
    frame[multi] = [["never-seen-genre"]] * 3
    batch = schema.encode(frame)
    assert (batch.single[:, schema.single_fields.index(schema.names.index(cat))] == OOV).all()
    assert (batch.multi[:, schema.multi_fields.index(schema.names.index(multi)), 0] == OOV).all()
    assert not batch.mask[:, schema.names.index(cat)].any()


def test_missing_column_error_names_it(dataset, schema):
    with pytest.raises(SchemaError, match="item_genres"):
        schema.encode(dataset.test.drop(columns=["item_genres"]))


def test_non_numeric_value_error_names_field(dataset, schema):
    frame = dataset.test.iloc[:2].copy()
    num = next(f.name for f in schema.fields if f.kind == "numeric")
    frame[num] = ["abc", "1"]
    with pytest.raises(SchemaError, match=num):
        schema.encode(frame)


def test_bad_kind_is_rejected(dataset):
    with pytest.raises(SchemaError, match="kind"):
        FeatureSchema.fit(dataset.train, [{"name": "gender", "view": "user_profile", "kind": "text"}])


def test_json_roundtrip_gives_same_encoding(dataset, schema, tmp_path):
    schema.save(tmp_path / "schema.json")
    again = FeatureSchema.load(tmp_path / "schema.json")
    assert again == schema
    a, b = schema.encode(dataset.test), again.encode(dataset.test)
    assert torch.equal(a.single, b.single) and torch.equal(a.multi, b.multi) and torch.equal(a.mask, b.mask)


def test_parquet_roundtrip_lists_as_arrays(dataset, schema, tmp_path):
    dataset.test.to_parquet(tmp_path / "t.parquet", index=False)
    frame = pd.read_parquet(tmp_path / "t.parquet")
    a, b = schema.encode(dataset.test), schema.encode(frame)
    assert torch.equal(a.single, b.single) and torch.equal(a.multi, b.multi) and torch.equal(a.mask, b.mask)


def test_min_count_sends_rare_values_to_oov(dataset):
    frame = dataset.train.copy()
    frame.loc[0, "region"] = "rare-region"
    feats = [f for f in dataset.features if f["name"] == "region"]
    assert "rare-region" in FeatureSchema.fit(frame, feats).fields[0].vocab
    assert "rare-region" not in FeatureSchema.fit(frame, feats, min_count=2).fields[0].vocab


def test_missing_count_hist_sums_to_one(schema):
    assert len(schema.missing_count_hist) == schema.n_fields + 1
    assert abs(sum(schema.missing_count_hist) - 1) < 1e-9
