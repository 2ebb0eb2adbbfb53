"""The functions' side: what the two Lambda functions (``handlers/``) run.

* ``intake``: an S3 event becomes a validated score task on the queue, or an
  answer at once when the key, the model or the options are wrong.
* ``task_messages``: Celery's task message written with boto3 alone, so a
  producer needs no Celery.
* ``dead_letters``: a task that exhausted its deliveries is announced ``exhausted``.

No LightGBM, numpy or pyarrow here: the functions stay small and start fast.
"""
