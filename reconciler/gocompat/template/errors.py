"""The three ways a template can fail here, as Go reports them (or does not: `Unsupported`)."""

from __future__ import annotations


class TemplateError(Exception):
    """The template does not parse; the message is Go's (`template: :1: ...`)."""


class ExecError(Exception):
    """The template parsed but failed while rendering; the message is Go's."""


class Unsupported(Exception):
    """The template does something this module does not model; no verdict."""
