"""Errors whose message is one line a user can act on; the CLI prints it and exits non-zero."""

from __future__ import annotations


class LabenvError(Exception):
    """Base of every error labenv reports to a user: the message is the whole story."""

    exit_code = 1


class InvalidInput(LabenvError):
    """Input that breaks a rule; the message names the field."""

    exit_code = 2


class CatalogError(LabenvError):
    """An `environments/` definition that cannot be loaded; the message names file and field."""

    exit_code = 3


class ClusterUnavailable(LabenvError):
    """No Kubernetes API server answered, or labenv's CRDs are not installed."""

    exit_code = 4


class NotFound(LabenvError):
    """A named session, course or unit that does not exist."""

    exit_code = 5
