"""Exception types raised by scrutiny.

Every error a user can trigger is one of these, and each message names the parameter,
what was expected, what was given and how to fix it.  The classes also derive from the
matching built-in exception so that code written against scikit-learn conventions
(``except ValueError``) keeps working.
"""

from __future__ import annotations

__all__ = [
    "ScrutinyError",
    "InvalidParameterError",
    "NotFittedError",
    "MissingDependencyError",
    "CapabilityError",
    "ModelError",
    "DataFormatError",
    "ScrutinyWarning",
    "ConvergenceWarning",
]


class ScrutinyError(Exception):
    """Base class of every exception raised on purpose by scrutiny."""


class InvalidParameterError(ScrutinyError, ValueError, TypeError):
    """A parameter or an input array has a wrong type, shape or value."""


class NotFittedError(ScrutinyError, ValueError, AttributeError):
    """An estimator (scrutiny's or a wrapped scikit-learn one) is used before ``fit``."""


class MissingDependencyError(ScrutinyError, ImportError):
    """An optional dependency needed for the requested feature is not installed."""


class CapabilityError(ScrutinyError, TypeError):
    """The model cannot do what a method needs (e.g. gradients of a scikit-learn forest)."""


class ModelError(ScrutinyError, RuntimeError):
    """The wrapped model raised, or returned outputs of the wrong shape or with NaN/inf."""


class DataFormatError(ScrutinyError, ValueError):
    """A data file is malformed (bad magic number, truncated, inconsistent sizes)."""


class ScrutinyWarning(UserWarning):
    """Base class of warnings issued by scrutiny."""


class ConvergenceWarning(ScrutinyWarning):
    """An iterative procedure stopped before reaching its tolerance."""
