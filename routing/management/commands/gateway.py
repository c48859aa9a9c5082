"""`manage.py gateway import|export|explain|healthcheck`: the gateway's command-line interface."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.authority import SHELL_ACTOR
from gateway_project.redis import redis_configured
from routing.configfile.service import config_export, config_import
from routing.configfile.validate import ConfigInvalid, size_error

EXPLAIN_WITHOUT_REDIS = (
    "note:       REDIS_URL is not set, so the running gateway counts limits and quotas in its "
    "own process, which this command cannot see: the counts and the verdict above ignore its "
    "traffic. Ask the running gateway instead: POST /api/gateway/explain/ (docs/api.md)."
)


class Command(BaseCommand):
    """Import, export and explain the gateway's configuration."""

    help = "Import or export the gateway config, or explain how a request would be handled."

    def add_arguments(self, parser: CommandParser) -> None:
        """Define the import, export and explain subcommands."""
        sub = parser.add_subparsers(dest="action", required=True)
        importing = sub.add_parser("import", help="Load a YAML config file.")
        importing.add_argument("file", help="The config file (YAML), or - for standard input.")
        importing.add_argument(
            "--dry-run", action="store_true", help="Print the diff, change nothing."
        )
        importing.add_argument(
            "--prune", action="store_true", help="Delete services and routes not in the file."
        )
        exporting = sub.add_parser("export", help="Write the live config as YAML.")
        exporting.add_argument("--output", help="Write to this file instead of standard output.")
        explaining = sub.add_parser("explain", help="Show how a request would be handled.")
        explaining.add_argument("method", help="HTTP method, e.g. GET.")
        explaining.add_argument("path", help="Request path, e.g. /api/v1/rd/tasks?x=1.")
        explaining.add_argument(
            "--header",
            action="append",
            default=[],
            metavar="'Name: value'",
            help="A request header; repeat for several.",
        )
        checking = sub.add_parser(
            "healthcheck", help="Probe service targets on their interval and publish health."
        )
        checking.add_argument(
            "--once", action="store_true", help="Probe every target once, print, and exit."
        )
        checking.add_argument(
            "--heartbeat",
            metavar="FILE",
            help="Touch FILE after every pass, for a liveness probe "
            "(python -m gateway_project.heartbeat FILE MAX_AGE).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the chosen subcommand."""
        action = options["action"]
        if action == "import":
            self._import(options["file"], dry_run=options["dry_run"], prune=options["prune"])
        elif action == "export":
            self._export(options.get("output"))
        elif action == "healthcheck":
            self._healthcheck(once=options["once"], heartbeat=options.get("heartbeat"))
        else:
            self._explain(options["method"], options["path"], options["header"])

    def _read_document(self, file_name: str) -> str:
        """The file's text, read no further than GATEWAY_MAX_CONFIG_SIZE (plus one byte)."""
        limit = settings.GATEWAY_MAX_CONFIG_SIZE
        try:
            if file_name == "-":
                data = sys.stdin.buffer.read(limit + 1)
            else:
                with Path(file_name).open("rb") as handle:
                    data = handle.read(limit + 1)
        except OSError as error:
            raise CommandError(f"Cannot read {file_name}: {error.strerror}.") from None
        if len(data) > limit:
            # Only the first limit + 1 bytes were read: a larger file never enters memory.
            size = None if file_name == "-" else Path(file_name).stat().st_size
            self.stderr.write(f"{file_name}: {size_error(size or None, limit).errors[0]}")
            raise CommandError(f"{file_name} is too large; nothing was changed.")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise CommandError(
                f"{file_name}: line {line}: the file is not UTF-8 text (byte {error.start}); "
                "save it as UTF-8. Nothing was changed."
            ) from None

    def _import(self, file_name: str, *, dry_run: bool, prune: bool) -> None:
        text = self._read_document(file_name)
        try:
            result = config_import(
                text=text,
                dry_run=dry_run,
                prune=prune,
                via=f"the command line ({file_name})",
                actor=SHELL_ACTOR,  # shell access: full rights, through the same check
            )
        except ConfigInvalid as invalid:
            for problem in invalid.errors:
                self.stderr.write(f"{file_name}: {problem}")
            raise CommandError(
                f"{len(invalid.errors)} error(s) in {file_name}; nothing was changed."
            ) from None
        for line in result.changes:
            self.stdout.write(line)
        if not result.changes:
            self.stdout.write("No changes: the live config already matches the file.")
        elif dry_run:
            self.stdout.write(f"Dry run: {len(result.changes)} change(s) not applied.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Applied {len(result.changes)} change(s)."))

    def _export(self, output: str | None) -> None:
        text = config_export()
        if output:
            Path(output).write_text(text)
            self.stderr.write(f"Wrote {output}.")
        else:
            self.stdout.write(text, ending="")

    def _explain(self, method: str, path: str, header_args: list[str]) -> None:
        from routing.explain import explain_request

        headers: dict[str, str] = {}
        for raw in header_args:
            name, sep, value = raw.partition(":")
            if not sep or not name.strip():
                raise CommandError(f"--header {raw!r} must look like 'Name: value'.")
            headers[name.strip()] = value.strip()
        report = explain_request(method=method.upper(), path=path, headers=headers)
        for line in report.lines():
            self.stdout.write(line)
        if not redis_configured():
            # Without Redis each process counts for itself: this command's counters are not the
            # running gateway's, so its "left" counts and verdict may be wrong. Say so.
            self.stdout.write(EXPLAIN_WITHOUT_REDIS)

    def _healthcheck(self, *, once: bool, heartbeat: str | None = None) -> None:
        import signal
        import threading

        from gateway_project.heartbeat import beat
        from routing.healthcheck import HealthChecker, ProbeResult
        from routing.nodes import HEALTH_CHECKER, set_process_role

        set_process_role(HEALTH_CHECKER)
        last: dict[str, bool] = {}

        def report(results: list[ProbeResult]) -> None:
            for result in results:
                if not once and last.get(result.target.key) == result.healthy:
                    continue  # the loop prints changes only
                last[result.target.key] = result.healthy
                verdict = "healthy" if result.healthy else "UNHEALTHY"
                detail = f" ({result.error})" if result.error else ""
                address = f" [{result.target.connect_host}]" if result.target.connect_host else ""
                self.stdout.write(
                    f"{result.service} {result.target.url}{address}: {verdict}{detail}"
                )

        checker = HealthChecker()
        try:
            if once:
                report(checker.run_once(force=True))
                return
            if not redis_configured():
                self.stderr.write(
                    "REDIS_URL is not set: verdicts stay in this process. Without Redis the "
                    "gateway's worker runs its own checks (GATEWAY_HEALTHCHECK_IN_PROCESS)."
                )
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            self.stdout.write("Health checks running; SIGTERM or Ctrl-C stops them.")
            on_tick = (lambda: beat(heartbeat)) if heartbeat else None
            checker.run_forever(stop, on_round=report, on_tick=on_tick)
        finally:
            checker.close()
