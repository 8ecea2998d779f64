"""Errors of the cloud layer: one line a user or the reconciler can act on."""

from __future__ import annotations

from labenv.errors import InvalidInput, LabenvError


class PulumiUnavailable(LabenvError):
    """The Pulumi CLI (which the Automation API drives) or the cloud extras are not installed."""


class CloudConfigError(InvalidInput):
    """Admin cloud settings that are missing or invalid; the message names the setting."""


class CloudStackError(LabenvError):
    """A stack operation (up) failed; the message names the stack and the first error line."""


class CloudStackDestroyError(CloudStackError):
    """A destroy failed: the cloud resources may still exist, so the session's finalizer must stay."""
