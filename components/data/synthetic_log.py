"""A synthetic event log with MovieLens' schema, for running the pipeline at 1M-10M events.

What makes it worth learning from: Zipf item popularity, users with a taste over genres,
sign-ups and item launches spread over time (so cold start happens), a per-user time of day,
and ratings driven by taste, item quality, user bias and the hour - so every feature view
carries some signal and losing one costs something.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.data.raw import RawTables
from common.params import ParamsSection

GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]
OCCUPATIONS = [
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive", "healthcare",
    "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer", "retired", "salesman",
    "scientist", "student", "technician", "writer",
]


@dataclass(frozen=True)
class SyntheticConfig(ParamsSection):
    """The params.yaml `ingest.synthetic:` section (its values live there only)."""

    SECTION = "ingest.synthetic"
    n_events: int
    n_users: int
    n_items: int
    days: int
    start: str
    zipf_exponent: float
    seed: int

    def validate(self) -> None:
        for name in ("n_events", "n_users", "n_items", "days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ingest.synthetic.{name} must be positive, got {getattr(self, name)}")


def generate(cfg: SyntheticConfig) -> RawTables:
    rng = np.random.default_rng(cfg.seed)
    start = int(pd.Timestamp(cfg.start, tz="UTC").timestamp())
    span = cfg.days * 86_400
    n_genres = len(GENRES)

    # Items: 1-3 genres, a quality, a release year, a launch time (a fifth exist before the log starts).
    item_genre = np.zeros((cfg.n_items, n_genres), dtype=np.float32)
    n_item_genres = rng.integers(1, 4, cfg.n_items)
    for i, k in enumerate(n_item_genres):
        item_genre[i, rng.choice(n_genres, k, replace=False)] = 1.0
    quality = rng.normal(0, 0.6, cfg.n_items)
    release_year = rng.integers(1950, 2024, cfg.n_items)
    launch = np.where(rng.random(cfg.n_items) < 0.3, start - 86_400, start + rng.random(cfg.n_items) * span)
    popularity = 1.0 / np.arange(1, cfg.n_items + 1) ** cfg.zipf_exponent
    popularity = popularity[rng.permutation(cfg.n_items)]
    popularity /= popularity.sum()

    # Users: a taste over genres, a bias, a favourite hour, an activity level, a sign-up time.
    taste = rng.dirichlet(np.full(n_genres, 0.3), cfg.n_users).astype(np.float32)
    user_bias = rng.normal(0, 0.4, cfg.n_users)
    age = rng.integers(15, 70, cfg.n_users)
    peak_hour = (rng.normal(20, 3, cfg.n_users)) % 24
    activity = rng.lognormal(0, 1.0, cfg.n_users)
    activity /= activity.sum()
    # Users keep arriving and churning, so cold start happens all along the log, not just at its start.
    signup = np.where(rng.random(cfg.n_users) < 0.2, start - 86_400, start + rng.random(cfg.n_users) * span)
    lifetime = rng.exponential(span / 3, cfg.n_users) + 86_400

    # Events: who, what, when.
    user = rng.choice(cfg.n_users, cfg.n_events, p=activity)
    item = rng.choice(cfg.n_items, cfg.n_events, p=popularity)
    earliest = np.maximum(np.maximum(signup[user], launch[item]), start)
    latest = np.minimum(start + span, np.maximum(signup[user] + lifetime[user], earliest + 3_600))
    t = earliest + rng.random(cfg.n_events) * (latest - earliest)
    day_start = (t - start) // 86_400 * 86_400 + start
    hour = (peak_hour[user] + rng.normal(0, 2.5, cfg.n_events)) % 24
    ts = np.minimum(day_start + hour * 3600, start + span - 1).astype(np.int64)

    # Ratings: taste match, quality, bias, a late-night dip and an age-by-era effect.
    match = (taste[user] * item_genre[item]).sum(1) / item_genre[item].sum(1) * n_genres
    era = -0.004 * (age[user] - 35) * (release_year[item] - 1990) / 10
    night = np.where((hour >= 1) & (hour < 6), -0.4, 0.0)
    score = 0.9 * np.log1p(match) + quality[item] + user_bias[user] + era + night + rng.normal(0, 0.7, cfg.n_events)
    rating = np.clip(np.round(2.8 + 1.1 * score), 1, 5)

    order = np.argsort(ts, kind="stable")
    events = pd.DataFrame(
        {"user_id": user[order] + 1, "item_id": item[order] + 1, "rating": rating[order].astype("float64"), "timestamp": ts[order]}
    )
    users = pd.DataFrame(
        {
            "user_id": np.arange(1, cfg.n_users + 1),
            "age": age,
            "gender": rng.choice(["M", "F"], cfg.n_users),
            "occupation": rng.choice(OCCUPATIONS, cfg.n_users),
            "zip_code": [f"{z:05d}" for z in rng.integers(0, 100_000, cfg.n_users)],
        }
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, cfg.n_items + 1),
            "title": [f"Item {i}" for i in range(1, cfg.n_items + 1)],
            "release_year": pd.array(release_year, dtype="Int64"),
            "genres": [[GENRES[j] for j in np.flatnonzero(row)] for row in item_genre],
        }
    )
    return RawTables(events=events, users=users, items=items).check()
