"""Studies of the model's case that need the data layer: the freshness-gap sweep."""
