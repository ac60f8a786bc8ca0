"""AWS adapters and entrypoints: the only package that imports boto3."""
