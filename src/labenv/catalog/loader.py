"""Load and validate `environments/`: every error names the file and the field."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from labenv.catalog.model import Course, ResolvedUnit, SupportMode, Unit
from labenv.components.model import Component, OptionSpec
from labenv.errors import CatalogError, InvalidInput, NotFound

_M = TypeVar("_M", bound=BaseModel)

# libyaml when present: the catalog is read on every CLI call.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

ENVIRONMENTS_ENV = "LABENV_ENVIRONMENTS"
COURSE_ENV = "LABENV_COURSE"

_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "boolean": bool,
    "list": list,
    "map": dict,
}


class CatalogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    default_course: str
    # Components every unit gets (the learner workspace); a unit may set their options.
    implicit_components: tuple[str, ...] = ()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{where}: {err['msg']}"


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read: {exc.strerror}") from exc


def _parse(model: type[_M], data: Any, path: Path, prefix: str = "") -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(f"{path}: {prefix}{_first_error(exc)}") from exc


def check_options(component: Component, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Defaults filled in; an unknown option or a value of the wrong type is an error naming it."""
    merged: dict[str, Any] = {}
    for key, value in given.items():
        spec: OptionSpec | None = component.options.get(key)
        if spec is None:
            known = ", ".join(sorted(component.options)) or "none"
            raise CatalogError(f"{where}.{key}: unknown option of {component.name} (known: {known})")
        expected = _OPTION_TYPES[spec.type]
        if not isinstance(value, expected) or (spec.type == "integer" and isinstance(value, bool)):
            raise CatalogError(f"{where}.{key}: expected {spec.type}, got {type(value).__name__}")
        merged[key] = value
    for key, spec in component.options.items():
        merged.setdefault(key, spec.default)
    return merged


def dependency_order(components: Mapping[str, Component], names: Iterable[str]) -> list[str]:
    """Names with their transitive dependencies, dependencies first; a cycle is an error."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = (*chain[chain.index(name) :], name)
            raise CatalogError(f"components: dependency cycle {' -> '.join(cycle)}")
        state[name] = "visiting"
        for dep in components[name].depends_on:
            visit(dep, (*chain, name))
        state[name] = "done"
        order.append(name)

    for name in names:
        visit(name, ())
    return order


@dataclass(frozen=True)
class Catalog:
    root: Path
    settings: CatalogSettings
    components: dict[str, Component]
    courses: dict[str, Course]
    # (course, unit id or alias) -> unit ids
    _index: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    @property
    def default_course(self) -> str:
        return self.settings.default_course

    def template_dir(self, component: str) -> Path:
        return self.root / "components" / component

    def course(self, slug: str) -> Course:
        try:
            return self.courses[slug]
        except KeyError:
            known = ", ".join(sorted(self.courses))
            raise NotFound(f"course: unknown course {slug!r} (known: {known})") from None

    def find_units(self, ref: str, course: str | None = None) -> tuple[Course, tuple[Unit, ...]]:
        """`week21`, `infra-36w/week21` or an alias such as `day12`, in `course` or the default.

        An alias may name several units (a week of the 14-week guide is its phase plus any project
        running that week); their environments are merged.
        """
        if "/" in ref:
            course, _, ref = ref.partition("/")
        slug = course or os.environ.get(COURSE_ENV) or self.default_course
        found = self.course(slug)
        unit_ids = self._index.get((slug, ref))
        if not unit_ids:
            raise NotFound(f"unit: {ref!r} is not a unit of course {slug!r} (see `labenv catalog {slug}`)")
        return found, tuple(u for u in found.units if u.id in unit_ids)

    def resolve(self, ref: str, course: str | None = None) -> ResolvedUnit:
        found, units = self.find_units(ref, course)
        for unit in units:
            if unit.support.mode == SupportMode.UNSUPPORTED:
                raise InvalidInput(
                    f"unit: {found.slug}/{unit.id} is not supported by labenv: {unit.support.reason}"
                )
        unit = units[0] if len(units) == 1 else merge_units(ref.rpartition("/")[2], units)
        return self.resolve_unit(found, unit)

    def resolve_unit(self, course: Course, unit: Unit) -> ResolvedUnit:
        wanted = dict(unit.components)
        for name in self.settings.implicit_components:
            wanted.setdefault(name, {})
        names = dependency_order(self.components, wanted)
        options: dict[str, dict[str, Any]] = {}
        for name in names:
            component = self.components[name]
            given = dict(wanted.get(name) or {})
            if "tools" in component.options and "tools" not in given:
                given["tools"] = list(unit.tools)
            options[name] = check_options(component, given, f"{course.slug}/{unit.id}: components.{name}")
        return ResolvedUnit(
            course=course,
            unit=unit,
            components=tuple(self.components[n] for n in names),
            options=options,
        )


def merge_units(ref: str, units: tuple[Unit, ...]) -> Unit:
    """One environment for several units taught at once: components and tools united."""
    components: dict[str, dict[str, Any]] = {}
    for unit in units:
        for name, opts in unit.components.items():
            components.setdefault(name, {}).update(opts or {})
    # The merged lab is served the way its most demanding unit is (a strategy beats native).
    support = next((u.support for u in units if u.support.mode != SupportMode.NATIVE), units[0].support)
    return Unit(
        id=ref,
        title=" + ".join(u.title for u in units),
        components=components,
        tools=tuple(dict.fromkeys(t for u in units for t in u.tools)),
        cloud=tuple(c for u in units for c in u.cloud),
        checks=tuple(c for u in units for c in u.checks),
        support=support,
    )


def _load_component(directory: Path) -> Component:
    path = directory / "component.yaml"
    component = _parse(Component, _read_yaml(path), path)
    if component.name != directory.name:
        raise CatalogError(f"{path}: name: {component.name!r} must match its folder {directory.name!r}")
    for template in component.templates:
        if not (directory / template).is_file():
            raise CatalogError(f"{path}: templates: {template!r} does not exist in {directory}")
    return component


def _check_dependencies(components: Mapping[str, Component]) -> None:
    for component in components.values():
        for dep in component.depends_on:
            if dep not in components:
                raise CatalogError(
                    f"components/{component.name}/component.yaml: depends_on: unknown component {dep!r}"
                )
    dependency_order(components, components)


def _index_course(course: Course, path: Path, components: Mapping[str, Component]) -> dict[str, list[str]]:
    """Unit ids and aliases -> unit ids. Ids are unique; an alias may name several units."""
    ids = {unit.id for unit in course.units}
    index: dict[str, list[str]] = {}
    for i, unit in enumerate(course.units):
        if unit.id in index:
            raise CatalogError(f"{path}: units[{i}].id: {unit.id!r} is used by another unit already")
        index[unit.id] = [unit.id]
    for i, unit in enumerate(course.units):
        for alias in unit.aliases:
            if alias in ids:
                raise CatalogError(f"{path}: units[{i}].aliases: {alias!r} is the id of a unit")
            index.setdefault(alias, []).append(unit.id)
        for name, opts in unit.components.items():
            component = components.get(name)
            if component is None:
                raise CatalogError(f"{path}: units[{i}].components.{name}: unknown component")
            check_options(component, opts or {}, f"{path}: units[{i}].components.{name}")
    return index


def load_catalog(root: Path) -> Catalog:
    settings_path = root / "catalog.yaml"
    settings = _parse(CatalogSettings, _read_yaml(settings_path), settings_path)
    components: dict[str, Component] = {}
    for directory in sorted((root / "components").iterdir()):
        if directory.is_dir() and not directory.name.startswith("_"):
            components[directory.name] = _load_component(directory)
    _check_dependencies(components)
    for name in settings.implicit_components:
        if name not in components:
            raise CatalogError(f"{settings_path}: implicit_components: unknown component {name!r}")

    courses: dict[str, Course] = {}
    index: dict[tuple[str, str], tuple[str, ...]] = {}
    for path in sorted((root / "courses").glob("*.yaml")):
        course = _parse(Course, _read_yaml(path), path)
        if course.slug != path.stem:
            raise CatalogError(f"{path}: slug: {course.slug!r} must match the file name {path.stem!r}")
        for key, unit_ids in _index_course(course, path, components).items():
            index[(course.slug, key)] = tuple(unit_ids)
        courses[course.slug] = course
    if settings.default_course not in courses:
        raise CatalogError(f"{settings_path}: default_course: unknown course {settings.default_course!r}")
    return Catalog(root=root, settings=settings, components=components, courses=courses, _index=index)


def environments_root() -> Path:
    """`$LABENV_ENVIRONMENTS`, else the repository's `environments/`, else the copy inside the wheel."""
    override = os.environ.get(ENVIRONMENTS_ENV)
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent.parent / "environments", package / "_data" / "environments"):
        if (candidate / "catalog.yaml").is_file():
            return candidate
    raise CatalogError(f"environments: not found; set {ENVIRONMENTS_ENV} to the environments/ folder")


@cache
def default_catalog() -> Catalog:
    return load_catalog(environments_root())
