"""Ports: the small interfaces pipelines depend on. Adapters implement them."""
