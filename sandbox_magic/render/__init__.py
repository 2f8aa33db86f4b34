"""Pure rendering helpers behind `sandbox_magic.bridge`: remote outputs to MIME bundles.

Nothing here publishes anything; `sandbox_magic.bridge` is the public entry point.
"""
