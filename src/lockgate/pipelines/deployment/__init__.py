"""The deployment pipeline: approvals, promotion between environments, the release ledger."""
