"""cva_rec: content-based item encoders for RecBole's sequential recommenders.

Importing the package installs :mod:`cva_rec.compat`, so that RecBole 1.2.1, whenever it is
first imported, works on numpy 2 / torch >= 2.6 / current setuptools. Importing the package
itself imports neither torch nor RecBole.
"""
from cva_rec import compat as _compat

_compat.install()

__version__ = "0.2.0"
