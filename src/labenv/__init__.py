"""labenv: provisioned lab environments on Kubernetes."""

__version__ = "0.1.0"
