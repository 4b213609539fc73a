"""ravyn_channels with ``RAVYN_CHANNELS["METRICS"] = True``: the ``ravyn`` variant's handlers, unchanged.

``bench.apps.settings`` turns metrics on for this variant only, so its cost is
this variant's figures beside the ``ravyn`` ones.
"""

from .ravyn import application

__all__ = ["application"]
