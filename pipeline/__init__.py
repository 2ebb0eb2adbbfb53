"""Event-driven batch scoring of files with LightGBM models on AWS.

A file dropped into the input bucket under ``<model-name>/`` is scored by a
Celery worker and written to the output bucket; a notification says where the
result is, or exactly why the file failed. The contracts users build on are
re-exported here.
"""

from pipeline.messages import ErrorInfo, ModelRef, Notification, ObjectRef, OutputRef, ScoreRequest

__all__ = ["ErrorInfo", "ModelRef", "Notification", "ObjectRef", "OutputRef", "ScoreRequest"]
