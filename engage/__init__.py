"""engage: biometric engagement sensing for adaptive, personalised films.

Data flows sources → signals → models → events → narrative (see DESIGN.md); every
layer imports only from the layers to its left and from :mod:`engage.core`.
"""

__version__ = "0.1.0"
