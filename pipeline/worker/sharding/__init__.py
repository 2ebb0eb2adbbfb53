"""One big file on many workers.

* ``rules``: where shards begin and end, and what their results add up to (pure).
* ``plan``: splitting a file: its plan, written once, and a task per shard.
* ``score``: one shard scored straight into the file's upload.
* ``join``: the shard that completes the set finishes the file, once.
"""
