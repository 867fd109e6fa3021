"""MovieLens-100K as shipped inside the `recbole` wheel (never copied into this repository)."""
from __future__ import annotations

from importlib import resources

import pandas as pd

from components.data.raw import RawTables

_PACKAGE = "recbole"
_FOLDER = ("dataset_example", "ml-100k")


def _read(name: str) -> pd.DataFrame:
    try:
        root = resources.files(_PACKAGE).joinpath(*_FOLDER)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "MovieLens-100K is read from the recbole wheel: run `pip install --no-deps recbole==1.2.1` "
            "(make installs it), or set ingest.source: synthetic in params.yaml"
        ) from err
    with root.joinpath(name).open("r", encoding="latin-1") as f:
        frame = pd.read_csv(f, sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]  # recbole names columns 'field:type'
    return frame


def load_movielens() -> RawTables:
    inter = _read("ml-100k.inter")
    events = pd.DataFrame(
        {
            "user_id": inter["user_id"].astype("int64"),
            "item_id": inter["item_id"].astype("int64"),
            "rating": inter["rating"].astype("float64"),
            "timestamp": inter["timestamp"].astype("float64").astype("int64"),
        }
    )
    user = _read("ml-100k.user")
    users = pd.DataFrame(
        {
            "user_id": user["user_id"].astype("int64"),
            "age": user["age"].astype("int64"),
            "gender": user["gender"],
            "occupation": user["occupation"],
            "zip_code": user["zip_code"],
        }
    )
    item = _read("ml-100k.item")
    year = pd.to_numeric(item["release_year"], errors="coerce")
    items = pd.DataFrame(
        {
            "item_id": item["item_id"].astype("int64"),
            "title": item["movie_title"],
            "release_year": year.astype("Int64"),
            "genres": [sorted(set(g.split())) if g.strip() else [] for g in item["class"]],
        }
    )
    return RawTables(events=events, users=users, items=items).check()
