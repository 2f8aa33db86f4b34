"""Remote outputs to MIME bundles: the output bridge between the wire and the notebook.

Everything here is pure (bundles in, bundles out) except `sandbox_magic.render.publish`,
the one module that touches ``IPython.display``; `sandbox_magic.render.sink.OutputSink`
is what a cell feeds its outputs to.
"""
