"""Courses and units as data, loaded from `environments/` and validated (floor 2)."""

from labenv.catalog.loader import Catalog, default_catalog, load_catalog

__all__ = ["Catalog", "default_catalog", "load_catalog"]
