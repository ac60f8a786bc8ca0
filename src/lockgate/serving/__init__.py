"""The endpoint server: SageMaker's inference container contract for a lockgate model package.

``python -m lockgate.serving`` (or :func:`lockgate.serving.server.run`) serves one package with
uvicorn; :func:`lockgate.serving.app.create_app` is the application. Modules:

* ``payload``: request bodies (CSV, JSON, JSON Lines) to named columns;
* ``model``: the package serving, strict validation, warm-up, batched prediction;
* ``batching``: concurrent requests answered by one model call;
* ``responses``: predictions to JSON or CSV, by ``Accept``;
* ``service``: the routes' state (the current package, hot swap, counts);
* ``metrics``, ``capture``, ``records``: Prometheus text, SageMaker data capture, serving
  records in the ledger.

Nothing is imported here, so ``python -m lockgate.serving`` starts no faster or slower than
its own imports.
"""
