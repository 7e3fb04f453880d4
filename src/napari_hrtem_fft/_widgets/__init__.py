"""napari dock widgets: reflection picker, lattice maps, statistics."""

from .picker import ReflectionPickerWidget

__all__ = ["ReflectionPickerWidget"]
