"""The four pipelines. They depend on ports only, never on typer, uvicorn or boto3."""
