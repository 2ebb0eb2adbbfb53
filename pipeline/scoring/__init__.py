"""The worker's side: reading files, matching features, LightGBM, writing results.

Only the worker imports this package; the handler must not (it would pull
lightgbm, numpy and pyarrow into the function's package and its cold start).
"""
