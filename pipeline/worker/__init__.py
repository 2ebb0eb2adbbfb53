"""The worker's side: a Celery ``--pool=solo`` worker that scores files.

* ``main``: the Celery app the worker command loads (``--app=pipeline.worker.main``).
* ``app`` and ``tasks``: the app's broker settings and the two tasks (score, compile).
* ``runtime`` and ``process``: the clients a worker holds, and one file from
  its task to its single announced outcome.
* ``delivery``, ``watchdog``, ``protection``, ``backoff``: holding the message
  while a file runs, timing a file out, protecting the container from
  scale-in, retrying transient errors.
* ``sharding``: one big file on many workers (plan, score, join).
"""
