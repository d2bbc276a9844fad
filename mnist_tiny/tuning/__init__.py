"""A recipe search on validation (`mnist-tiny tune`), on Optuna."""
