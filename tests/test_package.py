"""Package-level properties: lazy imports, public names, no global state."""

from __future__ import annotations

import subprocess
import sys

import scrutiny


def test_import_is_lazy_no_torch_or_matplotlib():
    code = (
        "import sys, scrutiny; "
        "scrutiny.Explanation; scrutiny.InvalidParameterError; "
        "heavy = [m for m in ('torch', 'matplotlib', 'sklearn', 'skimage') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_resolve():
    for name in scrutiny.__all__:
        assert getattr(scrutiny, name) is not None
    assert scrutiny.as_model is scrutiny.models.as_model


def test_exception_hierarchy_matches_builtin_conventions():
    from scrutiny import exceptions as ex

    assert issubclass(ex.InvalidParameterError, ValueError) and issubclass(ex.InvalidParameterError, TypeError)
    assert issubclass(ex.NotFittedError, AttributeError) and issubclass(ex.NotFittedError, ValueError)
    assert issubclass(ex.MissingDependencyError, ImportError)
    assert issubclass(ex.CapabilityError, TypeError)
    for cls in (ex.InvalidParameterError, ex.NotFittedError, ex.MissingDependencyError, ex.CapabilityError, ex.ModelError):
        assert issubclass(cls, ex.ScrutinyError)
