"""A broken catalog is refused with the file and the field named, before anything is created."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from labenv.api import SessionSpec
from labenv.catalog.loader import environments_root, load_catalog
from labenv.components import credentials
from labenv.errors import CatalogError, InvalidInput, NotFound
from labenv.reconcile import session


@pytest.fixture
def env(tmp_path: Path) -> Path:
    root = tmp_path / "environments"
    shutil.copytree(environments_root(), root)
    return root


def edit(path: Path, change: object) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(data))


def course_file(env: Path) -> Path:
    return env / "courses" / "infra-36w.yaml"


def week5(course: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(u for u in course["units"] if u["id"] == "week5")
    return found


def test_unknown_component_in_a_unit(env: Path) -> None:
    edit(course_file(env), lambda d: week5(d)["components"].update({"kafkaa": {}}))
    with pytest.raises(
        CatalogError, match=r"infra-36w.yaml: units\[\d+\].components.kafkaa: unknown component"
    ):
        load_catalog(env)


def test_duplicate_unit_id(env: Path) -> None:
    edit(course_file(env), lambda d: d["units"].append(dict(week5(d))))
    with pytest.raises(CatalogError, match=r"units\[\d+\].id: 'week5' is used by another unit"):
        load_catalog(env)


def test_option_of_the_wrong_type(env: Path) -> None:
    edit(course_file(env), lambda d: week5(d)["components"]["postgres"].update({"database": 5}))
    with pytest.raises(CatalogError, match=r"components.postgres.database: expected string, got int"):
        load_catalog(env)


def test_unknown_option(env: Path) -> None:
    edit(course_file(env), lambda d: week5(d)["components"]["postgres"].update({"databse": "x"}))
    with pytest.raises(CatalogError, match=r"postgres.databse: unknown option of postgres"):
        load_catalog(env)


def test_dependency_cycle(env: Path) -> None:
    edit(env / "components/postgres/component.yaml", lambda d: d.update({"depends_on": ["kafka"]}))
    edit(env / "components/kafka/component.yaml", lambda d: d.update({"depends_on": ["postgres"]}))
    with pytest.raises(
        CatalogError, match=r"dependency cycle (postgres -> kafka -> postgres|kafka -> postgres -> kafka)"
    ):
        load_catalog(env)


def test_unpinned_image(env: Path) -> None:
    edit(
        env / "components/kafka/component.yaml",
        lambda d: d["images"].update({"kafka": "apache/kafka:latest"}),
    )
    with pytest.raises(CatalogError, match=r"kafka/component.yaml: images: .*:latest"):
        load_catalog(env)


def test_template_error_names_template_and_line(env: Path) -> None:
    path = env / "components/postgres/service.yaml.j2"
    path.write_text(path.read_text().replace("port: 5432", "port: {{ options.no_such_option }}", 1))
    catalog = load_catalog(env)
    spec = SessionSpec(learner="ada", course="infra-36w", unit="week5")
    resolved = session.resolve(catalog, spec)
    ctx = session.context("ada-week5", "labenv", spec, "img:1")
    with pytest.raises(CatalogError, match=r"components/postgres/service.yaml.j2 line \d+: template error"):
        session.desired(catalog, resolved, ctx, "uid", credentials.missing(resolved.components, {}))


def test_unknown_unit_and_course_are_not_found() -> None:
    catalog = load_catalog(environments_root())
    with pytest.raises(NotFound, match="unit: 'week99' is not a unit of course 'infra-36w'"):
        catalog.resolve("week99")
    with pytest.raises(NotFound, match="course: unknown course 'nope'"):
        catalog.resolve("nope/week1")


def test_unsupported_unit_is_refused_with_its_reason(env: Path) -> None:
    edit(
        course_file(env),
        lambda d: week5(d).update({"support": {"mode": "unsupported", "reason": "needs a Docker daemon"}}),
    )
    with pytest.raises(
        InvalidInput, match="infra-36w/week5 is not supported by labenv: needs a Docker daemon"
    ):
        load_catalog(env).resolve("week5")


def test_overrides_add_components_and_check_options() -> None:
    catalog = load_catalog(environments_root())
    spec = SessionSpec(
        learner="ada",
        course="infra-36w",
        unit="week5",
        overrides={"components": {"kafka": {"auto_create_topics": False}}},
    )
    names = [c.name for c in session.resolve(catalog, spec).components]
    assert "postgres" in names
    assert "kafka" in names
    bad = SessionSpec(
        learner="ada", course="infra-36w", unit="week5", overrides={"components": {"nosuch": {}}}
    )
    with pytest.raises(InvalidInput, match=r"spec\.overrides\.components\.nosuch: unknown component"):
        session.resolve(catalog, bad)
