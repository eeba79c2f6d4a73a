"""Validation: JSON Schema per kind, then semantic checks per resource and across resources."""

from reconciler.validate.pipeline import Report, ResourceValidator, validate, validate_resource

__all__ = ["Report", "ResourceValidator", "validate", "validate_resource"]
