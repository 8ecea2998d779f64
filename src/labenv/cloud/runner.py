"""Run a stack: the small interface the operator and the CLI use, and its two implementations.

- `AutomationStackRunner` drives the Pulumi CLI through the Automation API (`pulumi.automation`):
  inline programs in a `LocalWorkspace`, state in the admin's backend (`file://`, `s3://`, `gs://`),
  secrets encrypted with the passphrase provider, no update checks and no plugin downloads at run
  time (the provider plugins must be installed beforehand, e.g. in the operator image). It needs
  the `pulumi` binary, which this repository's machines do not have: this path was never executed
  here.
- `MockStackRunner` runs the same programs under Pulumi's mocks (`labenv.cloud.mocks`), offline,
  and records the stacks (in memory, or as JSON files in a directory for the local demo). It can be
  told to fail an operation, to exercise the reconciler's retry path: in process with `fail_next`,
  or, for an operator running in another process, with files in its directory (`FAIL_FILE`,
  `DELAY_FILE`); there it also appends every operation to `journal.jsonl` with its times.

Both are synchronous (the Automation API blocks on a subprocess); `lifecycle` calls them in a
worker thread.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from labenv.cloud.config import CloudSettings, ProgramArgs
from labenv.cloud.errors import CloudStackDestroyError, CloudStackError, PulumiUnavailable

log = logging.getLogger(__name__)

PULUMI_VERSION = "3.272.0"
INSTALL_HINT = (
    f"install the Pulumi CLI {PULUMI_VERSION} (https://www.pulumi.com/docs/install/) and the provider "
    "plugins (pulumi plugin install resource aws 7.51.1; gcp 10.2.0; kubernetes 4.34.2), "
    "or use --dry-run to run the program under mocks"
)


class StackRunner(Protocol):
    """One Pulumi stack per name; `up` is idempotent and returns the outputs, `destroy` of a
    missing stack succeeds."""

    def up(self, stack_name: str, program_args: ProgramArgs) -> dict[str, str]: ...

    def destroy(self, stack_name: str) -> None: ...

    def list_stacks(self) -> list[str]: ...


def require_cloud_extras() -> None:
    try:
        import pulumi  # noqa: F401
        import pulumi_aws  # noqa: F401
        import pulumi_gcp  # noqa: F401
        import pulumi_kubernetes  # noqa: F401
    except ImportError as exc:
        raise PulumiUnavailable(f"{exc.name} is not installed: pip install 'labenv[cloud]'") from None


def require_pulumi_cli() -> str:
    found = shutil.which("pulumi")
    if found is None:
        raise PulumiUnavailable(f"the Pulumi CLI is not on PATH: {INSTALL_HINT}")
    return found


def first_error_line(text: str) -> str:
    """The line of a Pulumi failure worth showing: the first `error:` line, else the first line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.lower().startswith("error:") or " error: " in line.lower():
            return line
    return lines[0] if lines else "unknown error"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


class AutomationStackRunner:
    """Stacks in the admin's backend, driven by the Pulumi CLI (see the module docstring)."""

    def __init__(self, settings: CloudSettings) -> None:
        require_cloud_extras()
        require_pulumi_cli()
        self.settings = settings

    def _options(self, program: Callable[[], None]) -> Any:
        from pulumi import automation as auto

        env = {
            "PULUMI_CONFIG_PASSPHRASE": self.settings.passphrase(),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        }
        project = auto.ProjectSettings(
            name=self.settings.project,
            runtime="python",
            backend=auto.ProjectBackend(url=self.settings.backend_url),
        )
        return auto.LocalWorkspaceOptions(
            program=program,
            project_settings=project,
            secrets_provider="passphrase",
            env_vars=env,
            pulumi_home=self.settings.pulumi_home,
        )

    def up(self, stack_name: str, program_args: ProgramArgs) -> dict[str, str]:
        from pulumi import automation as auto

        from labenv.cloud import programs

        program = programs.exporting(programs.build(program_args))
        try:
            stack = auto.create_or_select_stack(
                stack_name, project_name=self.settings.project, program=program, opts=self._options(program)
            )
            result = stack.up(color="never", on_output=log.info, suppress_progress=True)
        except auto.CommandError as exc:
            raise CloudStackError(f"stack {stack_name}: up failed: {first_error_line(str(exc))}") from exc
        return {name: _text(output.value) for name, output in result.outputs.items()}

    def destroy(self, stack_name: str) -> None:
        from pulumi import automation as auto

        def nothing() -> None:
            return None

        try:
            stack = auto.select_stack(
                stack_name, project_name=self.settings.project, program=nothing, opts=self._options(nothing)
            )
        except auto.StackNotFoundError:
            return
        except auto.CommandError as exc:
            raise CloudStackDestroyError(
                f"stack {stack_name}: cannot select: {first_error_line(str(exc))}"
            ) from exc
        try:
            stack.destroy(color="never", on_output=log.info, suppress_progress=True, remove=True)
        except auto.CommandError as exc:
            raise CloudStackDestroyError(
                f"stack {stack_name}: destroy failed: {first_error_line(str(exc))}"
            ) from exc

    def list_stacks(self) -> list[str]:
        from pulumi import automation as auto

        def nothing() -> None:
            return None

        workspace = auto.LocalWorkspace(**vars(self._options(nothing)))
        try:
            return sorted(summary.name for summary in workspace.list_stacks())
        except auto.CommandError as exc:
            raise CloudStackError(f"listing stacks failed: {first_error_line(str(exc))}") from exc


Operation = Literal["up", "destroy"]
# File hooks in a MockStackRunner's state directory: `fail-destroy` (every stack) or
# `<stack>.fail-destroy` makes each destroy fail with the file's text while the file exists;
# `delay-destroy` holds the seconds each destroy waits first. Likewise for `up`.
FAIL_FILE = "fail-{operation}"
DELAY_FILE = "delay-{operation}"
JOURNAL = "journal.jsonl"


@dataclass
class _Failure:
    operation: Operation
    stack: str | None
    times: int
    message: str


class MockStackRunner:
    """Runs the real programs under Pulumi's mocks and records the stacks (see the module docstring)."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = state_dir
        self.runs: dict[str, Any] = {}  # stack -> MockRun of the last up (this process)
        self.history: list[tuple[Operation, str]] = []
        self._outputs: dict[str, dict[str, str]] = {}
        self._failures: list[_Failure] = []
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)

    def fail_next(
        self,
        operation: Operation,
        stack: str | None = None,
        times: int = 1,
        message: str = "injected failure",
    ) -> None:
        """Make the next `times` calls of `operation` (on `stack`, or any) fail like the cloud would."""
        self._failures.append(_Failure(operation, stack, times, message))

    def _maybe_fail(self, operation: Operation, stack: str) -> None:
        error = CloudStackDestroyError if operation == "destroy" else CloudStackError
        for failure in self._failures:
            if failure.operation == operation and failure.stack in (None, stack) and failure.times > 0:
                failure.times -= 1
                raise error(f"stack {stack}: {operation} failed: error: {failure.message}")
        if self.state_dir is None:
            return
        delay = self.state_dir / DELAY_FILE.format(operation=operation)
        if delay.exists():
            time.sleep(float(delay.read_text().strip() or 0))
        for name in (
            FAIL_FILE.format(operation=operation),
            f"{stack}.{FAIL_FILE.format(operation=operation)}",
        ):
            try:
                message = (self.state_dir / name).read_text().strip() or "injected failure"
            except FileNotFoundError:
                continue
            raise error(f"stack {stack}: {operation} failed: error: {message}")

    @contextmanager
    def _journal(self, operation: Operation, stack: str) -> Iterator[None]:
        """Append the operation, its start and end (epoch seconds) and its outcome to the journal."""
        started, error = time.time(), ""
        try:
            yield
        except Exception as exc:
            error = str(exc)
            raise
        finally:
            if self.state_dir is not None:
                entry = {
                    "op": operation,
                    "stack": stack,
                    "start": started,
                    "end": time.time(),
                    "error": error,
                }
                with (self.state_dir / JOURNAL).open("a") as journal:
                    journal.write(json.dumps(entry) + "\n")

    def _file(self, stack: str) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"{stack}.json"

    def up(self, stack_name: str, program_args: ProgramArgs) -> dict[str, str]:
        from labenv.cloud import programs
        from labenv.cloud.mocks import run_under_mocks

        self.history.append(("up", stack_name))
        with self._journal("up", stack_name):
            self._maybe_fail("up", stack_name)
            run = run_under_mocks(programs.build(program_args), stack=stack_name)
            self.runs[stack_name] = run
            self._outputs[stack_name] = dict(run.outputs)
            path = self._file(stack_name)
            if path is not None:
                record = {"outputs": run.outputs, "resources": [list(item) for item in run.summary()]}
                path.write_text(json.dumps(record, indent=2))
                os.chmod(path, 0o600)
        return dict(run.outputs)

    def destroy(self, stack_name: str) -> None:
        self.history.append(("destroy", stack_name))
        with self._journal("destroy", stack_name):
            self._maybe_fail("destroy", stack_name)
            self.runs.pop(stack_name, None)
            self._outputs.pop(stack_name, None)
            path = self._file(stack_name)
            if path is not None:
                path.unlink(missing_ok=True)

    def list_stacks(self) -> list[str]:
        if self.state_dir is not None:
            return sorted(p.stem for p in self.state_dir.glob("*.json"))
        return sorted(self._outputs)

    def outputs(self, stack_name: str) -> dict[str, str]:
        return dict(self._outputs[stack_name])


def make_runner(settings: CloudSettings) -> StackRunner:
    """The runner the admin configured: `automation` (the Pulumi CLI) or `mock` (local demo, tests).

    The mock runner keeps its records under a `file://` backend's directory, if one is configured.
    """
    if settings.runner == "mock":
        require_cloud_extras()
        state = Path(settings.backend_url.removeprefix("file://")) / "mock-stacks"
        return MockStackRunner(state if settings.backend_url.startswith("file://") else None)
    return AutomationStackRunner(settings)
