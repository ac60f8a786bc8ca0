"""The monitoring pipeline: data quality, data drift and model quality of an environment's
endpoint over a window of captured traffic, against the baseline of the data version its
current release was trained on."""
