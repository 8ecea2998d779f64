"""Render a component's Jinja2 templates into Kubernetes objects for one session.

Takes plain values and knows no course: the caller says which namespace, session and options.
Templates see only the variables documented in `environments/README.md`; an undefined variable is
an error that names the template and line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from labenv import names
from labenv.components.model import Component
from labenv.errors import CatalogError

Obj = dict[str, Any]

_CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
)


@dataclass(frozen=True)
class SessionContext:
    """Who and where: the values every template and setting may use."""

    session: str
    session_namespace: str
    namespace: str
    learner: str
    course: str
    unit: str
    workspace_image: str

    def labels(self) -> dict[str, str]:
        return names.session_labels(
            self.session, self.session_namespace, self.learner, self.course, self.unit
        )

    def host(self, service: str) -> str:
        return f"{service}.{self.namespace}.svc.cluster.local"


@cache
def _environment(components_root: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(components_root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # YAML, not HTML
    )


def _variables(component: Component, options: Mapping[str, Any], ctx: SessionContext) -> dict[str, Any]:
    return {
        "namespace": ctx.namespace,
        "session": ctx.session,
        "learner": ctx.learner,
        "course": ctx.course,
        "unit": ctx.unit,
        "component": component,
        "options": options,
        "images": component.images,
        "resources": component.resources,
        "workspace_image": ctx.workspace_image,
        "generated_secret": names.GENERATED_SECRET,
        "connection_secret": names.CONNECTION_SECRET,
        "learner_service_account": names.LEARNER_SERVICE_ACCOUNT,
        "secret_key": lambda credential: names.generated_key(component.name, credential),
        "host": ctx.host,
        "selector": {names.LABEL_NAME: component.name, names.LABEL_INSTANCE: ctx.session},
    }


def _template_line(exc: jinja2.TemplateError) -> int | None:
    """The template line of a render error: syntax errors carry it, runtime errors only in the
    traceback, which Jinja2 rewrites to point into the template file."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _template_error(where: str, exc: jinja2.TemplateError) -> CatalogError:
    line = _template_line(exc)
    at = f" line {line}" if line else ""
    return CatalogError(f"{where}{at}: template error: {exc.message or exc}")


def _stamp(obj: Obj, component: Component, ctx: SessionContext, where: str) -> Obj:
    """Namespace and the session's labels on every object and pod template; cluster scope refused."""
    if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
        raise CatalogError(f"{where}: every document must be an object with apiVersion and kind")
    if obj["kind"] in _CLUSTER_SCOPED:
        raise CatalogError(
            f"{where}: kind: {obj['kind']} is cluster-scoped; components live in the namespace"
        )
    meta = obj.setdefault("metadata", {})
    if not meta.get("name"):
        raise CatalogError(f"{where}: metadata.name: missing in a {obj['kind']}")
    meta["namespace"] = ctx.namespace
    labels = {
        **ctx.labels(),
        names.LABEL_NAME: component.name,
        names.LABEL_INSTANCE: ctx.session,
        names.LABEL_COMPONENT: component.name,
    }
    meta["labels"] = {**labels, **(meta.get("labels") or {})}
    spec = obj.get("spec") or {}
    pod_template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get("template")
    # Pods and the claims a StatefulSet makes carry the labels too, so audits find them. Not the
    # unit, course or learner: a changed pod template label would restart the pod on a week-to-week
    # upgrade or when a warm-pool session is handed to its learner.
    stable = {
        k: v
        for k, v in labels.items()
        if k not in (names.LABEL_UNIT, names.LABEL_COURSE, names.LABEL_LEARNER)
    }
    for template in [pod_template, *(spec.get("volumeClaimTemplates") or [])]:
        if isinstance(template, dict):
            template_meta = template.setdefault("metadata", {})
            template_meta["labels"] = {**stable, **(template_meta.get("labels") or {})}
    if obj["kind"] == "Job" and isinstance(pod_template, dict):
        # An injected mesh sidecar never exits, so a Job in an Istio-enrolled lab would never complete.
        annotations = pod_template["metadata"].setdefault("annotations", {})
        annotations.setdefault("sidecar.istio.io/inject", "false")
    return obj


def render_component(
    components_root: Path, component: Component, options: Mapping[str, Any], ctx: SessionContext
) -> list[Obj]:
    env = _environment(components_root)
    variables = _variables(component, options, ctx)
    objects: list[Obj] = []
    for template_name in component.templates:
        where = f"components/{component.name}/{template_name}"
        try:
            text = env.get_template(f"{component.name}/{template_name}").render(variables)
        except jinja2.TemplateError as exc:
            raise _template_error(where, exc) from exc
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            raise CatalogError(f"{where}: renders to invalid YAML: {str(exc).splitlines()[0]}") from exc
        objects.extend(_stamp(doc, component, ctx, where) for doc in documents if doc is not None)
    return objects


def render_settings(
    component: Component, options: Mapping[str, Any], ctx: SessionContext, credentials: Mapping[str, str]
) -> dict[str, str]:
    """The connection settings a component publishes (e.g. DATABASE_URL), with real credentials."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    variables = {**_variables(component, options, ctx), "credentials": credentials}
    settings: dict[str, str] = {}
    for key, expression in component.settings.items():
        try:
            settings[key] = env.from_string(expression).render(variables)
        except jinja2.TemplateError as exc:
            raise _template_error(f"components/{component.name}/component.yaml: settings.{key}", exc) from exc
    return settings
