"""SBIR methods: one module per family, one registry (:func:`sbirlab.models.registry.build_method`)."""
from .base import MethodConfig, SBIRMethod  # noqa: F401
