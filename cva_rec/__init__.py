"""cva_rec: content-based item encoders for RecBole's sequential recommenders.

Importing the package applies :mod:`cva_rec.compat` so that RecBole 1.2.1 imports on
numpy 2 / torch >= 2.6 / current setuptools.
"""
from cva_rec import compat as _compat

_compat.apply()

__version__ = "0.1.0"
