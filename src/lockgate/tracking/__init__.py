"""MLflow adapters of the Tracker and Registry ports."""
