"""The compiled engine: native code that predicts exactly as ``Booster.predict``.

* ``forest``: the model as plain trees, read from LightGBM's own writing of it.
* ``compiler``: LLVM code generated from the forest, a branch per split (the
  branch kernel); ``bitvector``: the same answers from masks of 256 rows at
  once, for forests within its limits; ``irgen``: what both kernels share.
  ``native`` loads and runs either.
* ``gate``: the exactness gate every artifact passes before it scores a row.
* ``compile_jobs``: compile jobs beside the worker (both kernels compiled, gated
  and timed, the faster kept), and attaching what passed.
* ``cache``: the models a worker has loaded, each on the best engine it may use.
* ``selfcheck``: can this machine compile exact forests (run at image build).
"""
