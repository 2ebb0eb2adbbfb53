"""The stores: everything that talks to AWS, and nothing that decides.

* ``aws``: boto3 clients, and AWS errors translated into the pipeline's own.
* ``storage`` and ``uploads``: S3 objects read as streams, and written in parts.
* ``ledger``: each job's outcome, progress and shard records (write-once puts).
* ``model_store``: versioned models, compile claims and compiled artifacts.
* ``notify``: publishing notifications to the topic.

Everything above (scoring, the worker, the functions, the users' side) reaches
S3, SQS and SNS through these modules; they import only the vocabulary below.
"""
