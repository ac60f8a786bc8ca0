"""Local adapters: the embedded default that needs no AWS (a folder store, the event runtime)."""
