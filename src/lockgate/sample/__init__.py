"""Seeded sample data sets for ``lockgate demo`` and for tests.

See :mod:`lockgate.sample.churn` for the customer-churn generator.
"""
