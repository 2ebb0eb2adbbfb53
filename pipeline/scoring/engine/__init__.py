"""The compiled engine: native code that predicts exactly as ``Booster.predict``.

* ``forest``: the model as plain trees, read from LightGBM's own writing of it.
* ``compiler``: LLVM code generated from the forest; ``native`` loads and runs it.
* ``gate``: the exactness gate every artifact passes before it scores a row.
* ``compile_jobs``: compile jobs beside the worker, and attaching what passed.
* ``cache``: the models a worker has loaded, each on the best engine it may use.
* ``selfcheck``: can this machine compile exact forests (run at image build).
"""
