"""The runner interface and `labenv infra`: dry runs work offline; real runs say what to install."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labenv.cli.infra import infra_app
from labenv.cloud.config import load_settings
from labenv.cloud.errors import CloudConfigError, PulumiUnavailable
from labenv.cloud.examples import example_settings
from labenv.cloud.runner import AutomationStackRunner, MockStackRunner, first_error_line, make_runner
from labenv.errors import InvalidInput

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def no_pulumi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no `pulumi` binary


def test_dry_run_prints_the_graph_without_a_cloud_or_a_cli(no_pulumi: None) -> None:
    result = CliRunner().invoke(
        infra_app,
        ["up", "--cloud", "aws", "--learners", "12", "--course", "backend-ai-60d", "-o", "json", "--dry-run"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{") :])
    assert data["stack"] == "cluster.aws.labenv" and data["learners"] == 12
    assert "labenv" in data["helmReleases"] and "traefik" in data["helmReleases"]
    types = {r["type"] for r in data["resources"]}
    assert {
        "aws:eks/cluster:Cluster",
        "aws:eks/nodeGroup:NodeGroup",
        "kubernetes:helm.sh/v3:Release",
    } <= types
    assert data["nodes"]["desired"] >= 2


def test_dry_run_sizes_for_istio_only_when_a_course_needs_it(no_pulumi: None) -> None:
    def releases(course: str) -> list[str]:
        result = CliRunner().invoke(
            infra_app, ["up", "--cloud", "gcp", "--course", course, "-o", "json", "--dry-run"]
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout[result.stdout.index("{") :])["helmReleases"]

    assert "istiod" in releases("infra-36w")  # a unit uses the istio component
    assert "istiod" not in releases("python-platform")


def test_up_without_the_pulumi_cli_fails_naming_what_to_install(no_pulumi: None) -> None:
    result = CliRunner().invoke(infra_app, ["up", "--cloud", "aws", "--admin-cidr", "203.0.113.0/24"])
    assert result.exit_code != 0
    assert isinstance(result.exception, PulumiUnavailable)
    message = str(result.exception)
    assert "\n" not in message and "Pulumi CLI" in message and "install" in message and "--dry-run" in message
    down = CliRunner().invoke(infra_app, ["down", "--cloud", "gcp"])
    assert isinstance(down.exception, PulumiUnavailable)


def test_automation_runner_needs_the_cli(no_pulumi: None) -> None:
    with pytest.raises(PulumiUnavailable, match="not on PATH"):
        AutomationStackRunner(example_settings(runner="automation"))
    with pytest.raises(PulumiUnavailable):
        make_runner(example_settings(runner="automation"))


def test_make_runner_mock_keeps_records_under_a_file_backend(tmp_path: Path) -> None:
    settings = example_settings().model_copy(update={"backend_url": f"file://{tmp_path}"})
    runner = make_runner(settings)
    assert isinstance(runner, MockStackRunner) and runner.state_dir == tmp_path / "mock-stacks"


def test_bad_cloud_is_invalid_input() -> None:
    result = CliRunner().invoke(infra_app, ["up", "--cloud", "azure", "--dry-run"])
    assert isinstance(result.exception, InvalidInput)


def test_settings_file_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text("backend_url: ftp://nope\n")
    with pytest.raises(CloudConfigError, match=r"cloud.yaml: backend_url: .*not a Pulumi backend URL"):
        load_settings(path)
    path.write_text(
        "backend_url: s3://state/labenv\naws: {alert_emails: [ops@example.org], client_cidrs: [0.0.0.0/0]}\n"
    )
    with pytest.raises(CloudConfigError, match=r"aws.client_cidrs: .*whole internet"):
        load_settings(path)
    path.write_text("backend_url: s3://state/labenv\nrunner: mock\n")
    assert load_settings(path).runner == "mock"


def test_passphrase_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = example_settings()
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    with pytest.raises(CloudConfigError, match=r"\$PULUMI_CONFIG_PASSPHRASE is empty"):
        settings.passphrase()
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "s3cret")
    assert settings.passphrase() == "s3cret"
    secret = tmp_path / "passphrase"
    secret.write_text("from-file\n")
    assert settings.model_copy(update={"passphrase_file": str(secret)}).passphrase() == "from-file"


def test_first_error_line_picks_the_error() -> None:
    text = "code: 255\n stdout: Updating (dev)\n stderr: error: update failed\n  more\n"
    assert first_error_line(text) == "stderr: error: update failed"
    assert first_error_line("\n\nsomething odd\n") == "something odd"


def test_automation_runner_plumbing_against_a_stand_in_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not Pulumi: a script that answers `version` and `stack ls`, to check what the runner passes it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    fake = bin_dir / "pulumi"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$* | skip=$PULUMI_SKIP_UPDATE_CHECK plugins=$PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION '
        f'pass=$PULUMI_CONFIG_PASSPHRASE | $(cat Pulumi.yaml 2>/dev/null | tr "\\n" " ")" >> {log}\n'
        'case "$*" in version) echo v3.272.0 ;; *"stack ls"*) echo "[{\\"name\\": '
        '\\"session.labenv.ada-week17\\", \\"current\\": false}, '
        '{\\"name\\": \\"cluster.aws.labenv\\", \\"current\\": false}]" ;; esac\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "s3cret")
    settings = example_settings(runner="automation").model_copy(update={"backend_url": "s3://state/labenv"})
    runner = AutomationStackRunner(settings)
    assert runner.list_stacks() == ["cluster.aws.labenv", "session.labenv.ada-week17"]
    calls = log.read_text()
    stack_ls = next(line for line in calls.splitlines() if "stack ls --json" in line)
    assert "skip=true plugins=true pass=s3cret" in stack_ls
    assert "url: s3://state/labenv" in stack_ls and "runtime: python" in stack_ls
