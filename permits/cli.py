"""Permit commands of the `breitband` command line: deadlines and the conditions catalogue."""

from __future__ import annotations

import json
import tomllib
import uuid
from pathlib import Path
from typing import Optional

import typer
from sqlalchemy import select

from breitband import clock, dates, identity
from breitband.db import get_database
from breitband.errors import ProblemError
from breitband.models import Organisation
from geo.importers import format_summary
from permits.cases import calculator, deemed
from permits.cases.catalogue import entries, load_catalogue, read_catalogue_file
from permits.documents import generator, keys
from permits.documents import service as documents
from permits.models import CatalogueKind
from permits.participation import service as participation
from permits.participation.importer import import_areas
from permits.participation.models import ParticipationBody
from permits.pipeline import runner
from permits.pipeline import service as pipeline
from permits.pipeline.models import PipelineRun


def register(app: typer.Typer) -> None:
    _register_pipeline(app)
    _register_participation(app)
    _register_documents(app)
    deadlines_app = typer.Typer(help="Statutory deadlines: compute them, issue deemed approvals (§ 127 (3) TKG).",
                                no_args_is_help=True)
    conditions_app = typer.Typer(help="The catalogue of standard conditions and refusal reasons per tenant.",
                                 no_args_is_help=True)
    app.add_typer(deadlines_app, name="deadlines")
    app.add_typer(conditions_app, name="conditions")

    @deadlines_app.command("run")
    def deadlines_run(now: Optional[str] = typer.Option(
            None, help="Treat this as the current time (ISO 8601, e.g. 2026-04-16T00:00:00+02:00; a date or a "
                       "time without offset is Europe/Berlin). Default: now."),
            tenant: Optional[str] = typer.Option(None, help="Only this tenant")) -> None:
        """Issue every deemed approval due now (what the beat task does every few minutes). Safe to repeat."""
        when = None
        if now is not None:
            try:
                when = dates.parse_instant(now)
            except ValueError:
                typer.echo(f"error: --now {now!r} is not an ISO 8601 date or datetime", err=True)
                raise typer.Exit(2) from None
        typer.echo(json.dumps(deemed.sweep(get_database(), when, tenant_key=tenant), indent=2, ensure_ascii=False))

    @deadlines_app.command("compute")
    def deadlines_compute(tenant: str = typer.Option(..., help="Tenant key (its [holidays] rules apply)"),
                          received: str = typer.Option(..., help="Receipt: YYYY-MM-DD or ISO 8601 date-time"),
                          complete: Optional[str] = typer.Option(None, help="Complete receipt (default: receipt)"),
                          extended: bool = typer.Option(False, "--extended", help="Deemed approval after the "
                                                        "extension of § 150 TKG"),
                          place: Optional[str] = typer.Option(None, help="AGS of the authority's seat where the "
                                                              "calendar differs inside the state"),
                          as_json: bool = typer.Option(False, "--json", help="Print JSON (as the API answers)")
                          ) -> None:
        """Completeness due, decision due and extended due for a receipt, each moved off Saturdays, Sundays and
        public holidays (§ 193 BGB) with the reason. Exit 2 on a bad date or tenant."""
        try:
            with get_database().transaction() as session:
                result = calculator.compute(session, tenant, received, complete, extended, place)
        except ProblemError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        else:
            typer.echo("\n".join(calculator.lines(result)))

    @conditions_app.command("load")
    def conditions_load(file: Path = typer.Argument(..., help="TOML file with [[conditions]] and [[refusal_reasons]]"),
                        tenant: str = typer.Option(..., help="Tenant key")) -> None:
        """Create or update the tenant's catalogue from FILE; entries missing from FILE are deactivated."""
        rows = read_catalogue_file(file)
        with get_database().transaction() as session:
            summary = load_catalogue(session, tenant, rows)
        typer.echo(json.dumps({"tenant": tenant, **summary}, indent=2))

    @conditions_app.command("list")
    def conditions_list(tenant: str = typer.Option(..., help="Tenant key"),
                        inactive: bool = typer.Option(False, "--inactive", help="Include deactivated entries")) -> None:
        """Print the tenant's conditions and refusal reasons."""
        with get_database().transaction() as session:
            identity.get_tenant(session, tenant)
            out = {kind.value: [{"code": e.code, "title": e.title, "active": e.active}
                                for e in entries(session, tenant, kind, include_inactive=inactive)]
                   for kind in CatalogueKind}
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))


def _register_pipeline(app: typer.Typer) -> None:
    pipeline_app = typer.Typer(help="The review pipeline after each submission and supplement.", no_args_is_help=True)
    app.add_typer(pipeline_app, name="pipeline")

    @pipeline_app.command("show")
    def pipeline_show(application_id: str = typer.Argument(..., help="Application id")) -> None:
        """Print the runs of an application with each step's status, result and error."""
        app_id = _uuid(application_id)
        with get_database().transaction() as session:
            runs = list(session.scalars(select(PipelineRun).where(
                PipelineRun.application_id == app_id).order_by(PipelineRun.version)))
            if not runs:
                typer.echo(f"error: application {application_id} has no pipeline run", err=True)
                raise typer.Exit(1)
            steps = pipeline.steps_of(session, [r.id for r in runs])
            out = [{"run": str(r.id), "version": r.version, "trigger": r.trigger, "status": r.status,
                    "steps": [{"name": s.name, "status": s.status, "attempts": s.attempts, "error": s.error,
                               "result": s.result} for s in steps[r.id]]} for r in runs]
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False, default=str))

    @pipeline_app.command("retry")
    def pipeline_retry(application_id: str = typer.Argument(..., help="Application id"),
                       step: Optional[str] = typer.Argument(None, help="resolution | checks | participation | "
                                                                       "notifications (default: the failed one)"),
                       wait: bool = typer.Option(False, "--here", help="Run the steps in this process instead of "
                                                                       "sending them to a worker")) -> None:
        """Run a failed step of the application's latest run again (and the steps after it)."""
        db = get_database()
        with db.transaction() as session:
            run = pipeline.retry(session, _uuid(application_id), step, clock.now())
            run_id = run.id
        if wait:
            results = []
            for name in pipeline.STEPS:
                try:
                    results.append({"step": name, **runner.run_step(db, run_id, name)})
                except Exception as exc:  # noqa: BLE001 - recorded on the step and shown
                    runner.record_failure(db, run_id, name, exc, final=True)
                    results.append({"step": name, "status": "failed", "error": str(exc)})
                    break
            typer.echo(json.dumps({"run": str(run_id), "steps": [{k: v for k, v in r.items() if k != "result"}
                                                                 for r in results]}, indent=2, ensure_ascii=False))
            if results[-1]["status"] == "failed":
                raise typer.Exit(1)
            return
        sent = runner.kick(db, run_id)
        typer.echo(json.dumps({"run": str(run_id), "sent_to_worker": sent,
                               "note": None if sent else "broker not reachable; beat will send it"}, indent=2))

    @pipeline_app.command("resume")
    def pipeline_resume() -> None:
        """Send the runs that were never sent or are stuck (what beat does every minute)."""
        typer.echo(json.dumps(runner.resume(get_database()), indent=2))


def _register_participation(app: typer.Typer) -> None:
    part_app = typer.Typer(help="Participation of other bodies (§ 127 (5) TKG): rules and bodies per tenant.",
                           no_args_is_help=True)
    rules_app = typer.Typer(help="The tenant's participation rules.", no_args_is_help=True)
    bodies_app = typer.Typer(help="Bodies to be heard, with role and place.", no_args_is_help=True)
    part_app.add_typer(rules_app, name="rules")
    part_app.add_typer(bodies_app, name="bodies")
    app.add_typer(part_app, name="participation")

    @rules_app.command("load")
    def rules_load(file: Path = typer.Argument(
                       ..., help="TOML with [[rules]] (see data/tenants/he_participation.toml)"),
                   tenant: str = typer.Option(..., help="Tenant key")) -> None:
        """Validate and store the tenant's participation rules (replacing the previous ones)."""
        rules = participation.read_rules_file(file)
        with get_database().transaction() as session:
            identity.get_tenant(session, tenant)
            participation.store_rules(session, tenant, rules, str(file), clock.now())
        typer.echo(json.dumps({"tenant": tenant, "rules": [r.id for r in rules.rules]}, indent=2))

    @rules_app.command("show")
    def rules_show(tenant: str = typer.Option(..., help="Tenant key")) -> None:
        """Print the rules in force (the tenant's, or the defaults)."""
        with get_database().transaction() as session:
            identity.get_tenant(session, tenant)
            rules, source = participation.tenant_rules(session, tenant)
        typer.echo(json.dumps({"source": source, **rules.model_dump(mode="json")}, indent=2, ensure_ascii=False))

    @bodies_app.command("add")
    def bodies_add(tenant: str = typer.Option(..., help="Tenant key"),
                   org: str = typer.Option(..., help="Organisation (kind participating_body): id or exact name"),
                   role: str = typer.Option(..., help="traffic | water | nature | monument"),
                   ags: Optional[str] = typer.Option(None, help="Place: Gemeinde (8 digits), Kreis (5), Land (2); "
                                                                "none: the whole tenant")) -> None:
        """Make an organisation the body with ROLE for a place (replaces the one registered there)."""
        with get_database().transaction() as session:
            organisation = identity.find_organisation(session, tenant, org)
            body = participation.add_body(session, tenant, organisation, role, ags, clock.now())
            out = {"organisation": organisation.name, "role": body.role, "ags": body.ags}
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))

    @bodies_app.command("list")
    def bodies_list(tenant: str = typer.Option(..., help="Tenant key")) -> None:
        """List the registered bodies."""
        with get_database().transaction() as session:
            rows = session.execute(select(ParticipationBody, Organisation.name).join(
                Organisation, Organisation.id == ParticipationBody.organisation_id).where(
                ParticipationBody.tenant_key == tenant).order_by(ParticipationBody.role, ParticipationBody.ags))
            out = [{"role": b.role, "ags": b.ags, "organisation": name, "organisation_id": str(b.organisation_id)}
                   for b, name in rows]
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))

    import_group = next((g.typer_instance for g in app.registered_groups if g.name == "import"), None)
    if import_group is None:            # geo's import commands are registered first; be independent of that
        import_group = typer.Typer(help="Import data into a tenant.", no_args_is_help=True)
        app.add_typer(import_group, name="import")

    @import_group.command("areas")
    def import_areas_cmd(file: Path = typer.Argument(..., help="Polygons (any GIS file GDAL reads, any CRS)"),
                         tenant: str = typer.Option(..., "--tenant", help="Tenant key"),
                         kind: str = typer.Option(..., "--kind", help="water | nature | monument"),
                         body: Optional[str] = typer.Option(None, "--body", help="Participating body responsible "
                                                                                 "for areas without a body attribute"),
                         quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar")) -> None:
        """Import protected areas (water, nature, monument protection); replaces the tenant's areas of KIND."""
        with get_database().transaction() as session:
            summary = import_areas(session, tenant, kind, file, body=body, progress_bar=not quiet)
        typer.echo(format_summary(summary))


def _register_documents(app: typer.Typer) -> None:
    docs_app = typer.Typer(help="Signed decision documents.", no_args_is_help=True)
    app.add_typer(docs_app, name="documents")

    @docs_app.command("generate")
    def documents_generate(limit: int = typer.Option(100, help="At most this many documents")) -> None:
        """Create and generate the documents that are due (decided cases without one, pending, failed), in this
        process (what the beat task does through the workers)."""
        db = get_database()
        results = []
        for doc_id in generator.sweep(db, limit=limit):
            try:
                results.append(generator.generate(db, doc_id))
            except Exception as exc:  # noqa: BLE001 - recorded on the document and shown
                results.append({"document_id": str(doc_id), "status": "failed", "error": str(exc)})
        typer.echo(json.dumps(results, indent=2, ensure_ascii=False))

    @docs_app.command("keys")
    def documents_keys(tenant: str = typer.Option(..., help="Tenant key"),
                       authority: Optional[str] = typer.Option(
                           None, help="An authority (organisation id or exact name): show, import or create its key"),
                       import_file: Optional[Path] = typer.Option(
                           None, "--import", help="PKCS#12 file (.p12/.pfx) with the authority's key and certificate"),
                       password_file: Optional[Path] = typer.Option(
                           None, help="File holding the PKCS#12 password (first line)"),
                       create_self_signed: bool = typer.Option(
                           False, help="Create a self-signed test key for the authority (documents say: test only)"),
                       ) -> None:
        """The signing certificate of the tenant (development: created if missing), or with --authority that of an
        authority: shown, imported from the PKCS#12 file it brings, or created self-signed for tests."""
        if authority is None:
            if import_file or password_file or create_self_signed:
                _fail("--import, --password-file and --create-self-signed need --authority")
            with get_database().transaction() as session:
                name = identity.get_tenant(session, tenant).name
            key = keys.ensure_key(tenant, name)
            typer.echo(json.dumps({"tenant": tenant, "certificate": str(key.cert_file), "subject": keys.subject(key),
                                   "sha256": keys.cert_sha256(key), "self_signed": key.self_signed}, indent=2,
                                  ensure_ascii=False))
            return
        if import_file and create_self_signed:
            _fail("give either --import or --create-self-signed")
        if import_file and not import_file.is_file():
            _fail(f"{import_file}: no such file")
        if password_file and not password_file.is_file():
            _fail(f"{password_file}: no such file")
        password = password_file.read_text().splitlines()[0].encode() if password_file and \
            password_file.read_text().strip() else None
        with get_database().transaction() as session:
            identity.get_tenant(session, tenant)
            org = _authority(session, tenant, authority)
            if import_file:
                try:
                    row = keys.import_pkcs12(session, tenant, org.id, import_file.read_bytes(), password, clock.now())
                except keys.KeyImportError as exc:
                    _fail(f"{import_file}: {exc}")
            elif create_self_signed:
                row = keys.create_authority_test_key(session, tenant, org.id, org.name, clock.now())
            else:
                row = keys.authority_key(session, org.id)
            out = {"tenant": tenant, "authority": org.name, "organisation_id": str(org.id),
                   "key": keys.authority_key_out(row) if row else None,
                   "signs_with": "authority" if row else "platform key of the tenant (no key of the authority)"}
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))

    @docs_app.command("letterheads")
    def documents_letterheads(tenant: str = typer.Option(..., help="Tenant key"),
                              load: Optional[Path] = typer.Option(
                                  None, help="TOML file with [[authority]] name, address, phone, email, website")
                              ) -> None:
        """Load the authorities' letterhead data from a file, and list the authorities whose decision letters lack
        an address, phone or e-mail (the letters are laid out without it: enter it)."""
        entries = None
        if load is not None:
            if not load.is_file():
                _fail(f"{load}: no such file")
            try:
                entries = tomllib.loads(load.read_text())["authority"]
            except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
                _fail(f"{load}: not a letterhead file ([[authority]] entries): {exc}")
        with get_database().transaction() as session:
            identity.get_tenant(session, tenant)
            loaded = documents.load_letterheads(session, tenant, entries) if entries is not None else None
            gaps = documents.letterhead_gaps(session, tenant)
        if loaded:
            typer.echo(f"updated {len(loaded['updated'])} authorities"
                       + (f"; not found: {', '.join(map(str, loaded['not_found']))}" if loaded["not_found"] else ""))
        for gap in gaps:
            typer.echo(f"warning: {gap['authority']}: no {', '.join(gap['missing'])} in the letterhead")

    @docs_app.command("verify")
    def documents_verify(file: Path = typer.Argument(..., help="A PDF")) -> None:
        """Check a PDF like POST /verify does; exit code 0 only for a genuine, unchanged document."""
        with get_database().transaction() as session:
            result = documents.verify(session, file.read_bytes())
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        if not result["genuine"]:
            raise typer.Exit(1)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _authority(session, tenant: str, ref: str) -> Organisation:
    """An authority of the tenant by id or exact name (one line `error: …` and exit 2 when none or several)."""
    stmt = select(Organisation).where(Organisation.tenant_key == tenant, Organisation.kind == "road_authority")
    try:
        found = list(session.scalars(stmt.where(Organisation.id == uuid.UUID(ref))))
    except ValueError:
        found = list(session.scalars(stmt.where(Organisation.name == ref)))
    if len(found) != 1:
        _fail(f"{'no' if not found else 'more than one'} road authority {ref!r} in tenant {tenant!r}")
    return found[0]


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        typer.echo(f"error: {text!r} is not an id (a UUID)", err=True)
        raise typer.Exit(2) from None
