"""The training pipeline: a dataset version becomes fitted candidate models.

An Optuna study searches a conditional space (``space``) over model families
(``families``), each trial scored on the validation split with one metric (``metrics``).
A trial runs through the SageMaker training-container contract (``entrypoint``), so the same
code trains a trial in a local worker process and in a SageMaker training job.
"""
