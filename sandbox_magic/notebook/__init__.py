"""The notebook edge: the magics and everything that imports IPython."""
