"""The recommender pipeline without Ray: config, data, model, training, metrics, baselines, recommendations."""
