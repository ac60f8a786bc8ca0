"""The ``lockgate`` command line: parses input, builds adapters from configuration, calls a
pipeline, prints the outcome. No pipeline logic lives here."""
