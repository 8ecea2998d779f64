"""`labenv catalog`: courses, units, components and sizing, as tables or data."""

from __future__ import annotations

from typing import Any

from labenv import quantity
from labenv.catalog.loader import Catalog
from labenv.catalog.model import Course, ResolvedUnit, SupportMode
from labenv.cli.output import Output, console, draw, emit
from labenv.reconcile import tenancy


def _sizing(resolved: ResolvedUnit) -> dict[str, str]:
    totals = tenancy.quota_totals(resolved.components)
    return {
        "cpu": quantity.cpu(totals["requests.cpu"] - tenancy.LEARNER_HEADROOM["cpu"]),
        "memory": quantity.memory(totals["requests.memory"] - tenancy.LEARNER_HEADROOM["memory"]),
        "storage": quantity.memory(totals["requests.storage"] - tenancy.LEARNER_HEADROOM["storage"]),
    }


def unit_summary(catalog: Catalog, course: Course, unit_id: str) -> dict[str, Any]:
    _, units = catalog.find_units(unit_id, course.slug)
    unit = units[0]
    summary: dict[str, Any] = {
        "course": course.slug,
        "id": unit.id,
        "title": unit.title,
        "aliases": list(unit.aliases),
        "support": unit.support.model_dump(exclude_none=True),
        "tools": list(unit.tools),
        "cloud": [c.model_dump() for c in unit.cloud],
        "checks": list(unit.checks),
    }
    if unit.support.mode == SupportMode.UNSUPPORTED:
        return summary | {"components": [], "requests": {}}
    resolved = catalog.resolve_unit(course, unit)
    return summary | {
        "components": [
            {"name": c.name, "options": resolved.options[c.name], "depends_on": list(c.depends_on)}
            for c in resolved.components
        ],
        "requests": _sizing(resolved),
    }


def show(catalog: Catalog, course_slug: str | None, unit: str | None, output: Output) -> None:
    if course_slug is None and unit is None:
        courses = [
            {
                "slug": c.slug,
                "title": c.title,
                "units": len(c.units),
                "default": c.slug == catalog.default_course,
            }
            for c in catalog.courses.values()
        ]
        emit(
            {"courses": courses},
            output,
            lambda: draw(
                "Courses",
                ["Course", "Title", "Units", "Default"],
                [(c["slug"], c["title"], c["units"], "yes" if c["default"] else "") for c in courses],
            ),
        )
        return
    course = catalog.course(course_slug or catalog.default_course)
    if unit is not None:
        summary = unit_summary(catalog, course, unit)

        def table() -> None:
            console.print(
                f"[bold]{course.slug}/{summary['id']}[/bold]: {summary['title']}  "
                f"(support: {summary['support']['mode']})"
            )
            if summary["support"].get("reason"):
                console.print(f"  {summary['support']['reason']}")
            draw(
                "Components",
                ["Component", "Depends on", "Options"],
                [(c["name"], ", ".join(c["depends_on"]), c["options"]) for c in summary["components"]],
            )
            console.print(f"Requests: {summary['requests']}  Tools: {', '.join(summary['tools'])}")

        emit(summary, output, table)
        return
    units = [unit_summary(catalog, course, u.id) for u in course.units]
    emit(
        {"course": course.slug, "units": units},
        output,
        lambda: draw(
            f"{course.slug}: {course.title}",
            ["Unit", "Title", "Support", "Components", "CPU", "Memory"],
            [
                (
                    u["id"],
                    u["title"],
                    u["support"]["mode"],
                    ", ".join(c["name"] for c in u["components"]),
                    u["requests"].get("cpu", ""),
                    u["requests"].get("memory", ""),
                )
                for u in units
            ],
        ),
    )
