"""The local stack: the pipeline on a laptop, on the embedded AWS emulator.

* ``emulator``: moto in server mode on 127.0.0.1, reached through ``AWS_ENDPOINT_URL``.
* ``template`` and ``provision``: the resources of ``template.yaml``, created by
  reading it (moto's CloudFormation ignores SAM resources, subscriptions and
  bucket notifications, so we create them through the API ourselves).
* ``poller``: plays Lambda's SQS event-source mapping for the handlers.
* ``workers``: real ``celery worker --pool=solo`` subprocesses.
* ``stack``: all of the above, started and stopped together.
"""
