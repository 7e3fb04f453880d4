"""The computational core: pure numpy/scipy/dask, never napari, Qt or magicgui."""
