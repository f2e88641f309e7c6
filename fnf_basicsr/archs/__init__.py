"""Imports every `*_arch.py` here so that its classes register with BasicSR."""
from fnf_basicsr.utils.discovery import import_suffixed_modules

_modules = import_suffixed_modules(__name__, __file__, '_arch')
