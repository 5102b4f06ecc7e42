"""Patient-level prediction: tasks, covariates, models, evaluation, explanations (see README.md)."""
