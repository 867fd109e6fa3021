"""The definitions as module-level objects, for `feast apply` run by hand in this folder (Feast's
CLI collects module-level objects). Settings come from the environment: see settings.py."""
from feature_repo.definitions import build_definitions
from feature_repo.settings import FeatureRepoSettings

_applied = build_definitions(FeatureRepoSettings.from_environment())
user_profile = _applied.user_profile
user_activity = _applied.user_activity
item_metadata = _applied.item_metadata
item_stats = _applied.item_stats
asymdiffrec_v1 = _applied.service
