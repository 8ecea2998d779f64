"""A LabSession and the catalog -> every object its lab should consist of."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any

from labenv import names
from labenv.api import EndpointStatus, SessionSpec
from labenv.catalog.loader import Catalog, check_options
from labenv.catalog.model import ResolvedUnit
from labenv.components import credentials
from labenv.components.model import Component
from labenv.components.render import SessionContext, render_component, render_settings
from labenv.errors import CatalogError, InvalidInput
from labenv.reconcile import tenancy

Obj = dict[str, Any]


@dataclass(frozen=True)
class ComponentPlan:
    component: Component
    objects: list[Obj]
    endpoints: list[EndpointStatus]

    @property
    def name(self) -> str:
        return self.component.name


@dataclass(frozen=True)
class DesiredState:
    namespace: Obj
    tenancy: list[Obj]
    connection_secret: Obj
    components: list[ComponentPlan]  # dependencies first

    def eligible(self, ready: Set[str]) -> list[ComponentPlan]:
        """Components whose dependencies are all ready: the ones to apply now."""
        return [p for p in self.components if all(dep in ready for dep in p.component.depends_on)]


def resolve(catalog: Catalog, spec: SessionSpec) -> ResolvedUnit:
    """The session's unit with its overrides; an unknown unit or option is an error naming it."""
    base = catalog.resolve(spec.unit, spec.course)
    if not spec.overrides.components:
        return base
    merged = {name: dict(opts or {}) for name, opts in base.unit.components.items()}
    for name, opts in spec.overrides.components.items():
        component = catalog.components.get(name)
        if component is None:
            raise InvalidInput(f"spec.overrides.components.{name}: unknown component")
        check_options(component, opts, f"spec.overrides.components.{name}")
        merged.setdefault(name, {}).update(opts)
    return catalog.resolve_unit(base.course, base.unit.model_copy(update={"components": merged}))


def context(session: str, session_namespace: str, spec: SessionSpec, workspace_image: str) -> SessionContext:
    return SessionContext(
        session=session,
        session_namespace=session_namespace,
        namespace=names.lab_namespace(session),
        learner=spec.learner,
        course=spec.course,
        unit=spec.unit,
        workspace_image=workspace_image,
    )


def endpoints(component: Component, ctx: SessionContext) -> list[EndpointStatus]:
    return [
        EndpointStatus(
            component=component.name,
            name=e.name,
            host=ctx.host(e.service),
            port=e.port,
            url=f"{e.scheme}://{ctx.host(e.service)}:{e.port}",
        )
        for e in component.endpoints
    ]


def desired(
    catalog: Catalog,
    resolved: ResolvedUnit,
    ctx: SessionContext,
    session_uid: str,
    generated: Mapping[str, str],
) -> DesiredState:
    """Everything the session's namespace should hold, given the generated credentials it has."""
    components_root = catalog.root / "components"
    settings: dict[str, str] = {}
    publisher: dict[str, str] = {}
    plans: list[ComponentPlan] = []
    for component in resolved.components:
        options = resolved.options[component.name]
        own = credentials.of_component(component, generated)
        if len(own) != len(component.credentials):
            raise CatalogError(
                f"components/{component.name}: credentials were not generated before rendering"
            )
        for key, value in render_settings(component, options, ctx, own).items():
            if key in settings and settings[key] != value:
                raise CatalogError(
                    f"{resolved.course.slug}/{resolved.unit.id}: {publisher[key]} and {component.name} both "
                    f"publish {key} with different values; set an option so that only one does"
                )
            settings[key], publisher[key] = value, component.name
        plans.append(
            ComponentPlan(
                component=component,
                objects=render_component(components_root, component, options, ctx),
                endpoints=endpoints(component, ctx),
            )
        )
    return DesiredState(
        namespace=tenancy.namespace(ctx, session_uid, resolved.components),
        tenancy=tenancy.objects(ctx, resolved.components),
        connection_secret=tenancy.connection_secret(ctx, settings),
        components=plans,
    )
