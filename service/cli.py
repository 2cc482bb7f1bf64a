"""``rskd``: one command for everything.

    rskd train … / rskd list …                 one training run (rskd_core; see ``rskd train --help``)
    rskd serve [--detach]                        the embedded stack: Ray head, MLflow server, API
    rskd stop                                    stop a detached stack and everything it started
    rskd submit SPEC.yaml [--follow]             submit a sweep; --follow shows a live table until it ends
    rskd sweeps list | show ID | cancel ID | resume ID
    rskd report ID [--format md|latex|csv|json] [--baseline NAME]   a table on a terminal, Markdown when piped

The client talks HTTP to ``RSKD_URL`` (default http://127.0.0.1:8000) with ``RSKD_API_TOKEN``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dashboards.layout import PRUNED, RunState
from worker.states import TERMINAL

if TYPE_CHECKING:
    from dashboards.report import Report

app = typer.Typer(add_completion=False, no_args_is_help=True, help="RSKD sweeps: train, serve, submit, compare.")
sweeps_app = typer.Typer(no_args_is_help=True, help="Sweeps on the service.")
app.add_typer(sweeps_app, name="sweeps")
console = Console(width=None if sys.stdout.isatty() else 160)  # pipes and logs get the whole table


def home() -> Path:
    return Path(os.environ.get("RSKD_HOME", ".rskd"))


def api() -> httpx.Client:
    token = os.environ.get("RSKD_API_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url(), headers=headers, timeout=60)


def base_url() -> str:
    return os.environ.get("RSKD_URL", "http://127.0.0.1:8000").rstrip("/")


def _check(r: httpx.Response) -> Any:
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            body = {"detail": r.text}
        console.print(f"[red]error {r.status_code}:[/] {body.get('detail')}")
        for p in body.get("problems", []):
            console.print(f"  - {p}")
        raise typer.Exit(2 if r.status_code in (409, 413, 422) else 1)
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


def _call(method: str, path: str, **kw: Any) -> Any:
    """The JSON body (or the text of a text response) of an API call; errors are printed and exit."""
    try:
        with api() as c:
            return _check(c.request(method, path, **kw))
    except httpx.ConnectError:
        console.print(f"[red]cannot reach the service at {base_url()}[/]: "
                      "start it with `rskd serve` or set RSKD_URL")  # fmt: skip
        raise typer.Exit(1) from None


# ---------------------------------------------------------------- one run (rskd_core's own argparse CLI)

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command(context_settings=PASS_THROUGH, add_help_option=False)
def train(ctx: typer.Context) -> None:
    """Train one run: rskd train CONFIG.yaml [--set a.b=v] [--method M] [--out DIR] [--resume DIR]."""
    from rskd_core.cli import main as core_main

    raise typer.Exit(core_main(["train", *ctx.args]))


@app.command("list", context_settings=PASS_THROUGH, add_help_option=False)
def list_registered(ctx: typer.Context) -> None:
    """List registered names: rskd list methods|models|teachers|datasets."""
    from rskd_core.cli import main as core_main

    raise typer.Exit(core_main(["list", *ctx.args]))


# ---------------------------------------------------------------- the stack


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="API address; anything but 127.0.0.1 needs RSKD_API_TOKEN")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    mlflow_port: int = 5000,
    ray_port: int = 6379,
    ray_dashboard_port: int = 8265,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs the local Ray head offers")] = None,
    detach: Annotated[bool, typer.Option(help="run in the background; `rskd stop` stops it")] = False,
) -> None:
    """Start whatever is not given (a Ray head, an MLflow server) and the API; stop all of it on Ctrl-C/SIGTERM."""
    from service.local_stack import StackError, StackOptions, running_stack

    check_host_safe(host)
    h = home()
    if detach:
        serve_detached(h, port, mlflow_port, ray_dashboard_port)
        return
    opts = StackOptions(home=h, host=host, port=port, mlflow_port=mlflow_port, ray_port=ray_port,
                        ray_dashboard_port=ray_dashboard_port, num_cpus=num_cpus)  # fmt: skip
    try:
        with running_stack(opts) as stack:
            os.environ.update(stack.env)
            import uvicorn

            from service.app import create_app
            from service.settings import Settings

            urls = stack.urls()
            console.print("[bold]RSKD sweeps[/] is up:")
            for name, url in urls.items():
                console.print(f"  {name:7} {url}")
            # uvicorn re-raises the SIGTERM/SIGINT it caught once it has shut down: make that an exception, so the
            # stack's clean-up runs instead of the default action killing this process on the spot
            signal.signal(signal.SIGTERM, _exit_on_signal)
            uvicorn.run(create_app(Settings()), host=host, port=port, log_level="warning")
    except StackError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(1) from None


def serve_detached(h: Path, port: int, mlflow_port: int, ray_dashboard_port: int) -> None:
    """``rskd serve`` again in a new session (without ``--detach``), its output in ``serve.log``, once it is ready."""
    from service.local_stack import StackError, wait_http

    if running_pid(h) is not None:
        console.print(f"a stack is already running from {h} (pid {running_pid(h)}); `rskd stop` stops it")
        print_urls(port, mlflow_port, ray_dashboard_port)
        return
    h.mkdir(parents=True, exist_ok=True)
    args = [a for a in sys.argv[1:] if a != "--detach"]
    log = (h / "serve.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", *args], stdout=log, stderr=log,
                            start_new_session=True)  # fmt: skip
    (h / "serve.pid").write_text(str(proc.pid))

    def alive() -> None:  # a stack that refused to start (a port taken, …) says why at once, not after 300 s
        if proc.poll() is not None:
            tail = (h / "serve.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise StackError(f"the stack exited with code {proc.returncode}: " + " | ".join(tail))

    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", 300, "the stack", alive)
    except StackError as err:
        console.print(f"[red]{err}[/]; see {h / 'serve.log'}")
        raise typer.Exit(1) from None
    console.print(f"stack running in the background (pid {proc.pid}); stop it with `rskd stop`")
    print_urls(port, mlflow_port, ray_dashboard_port)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def check_host_safe(host: str) -> None:
    from service.local_stack import StackError, check_host

    try:
        check_host(host, os.environ.get("RSKD_API_TOKEN"))
    except StackError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(2) from None


def print_urls(port: int, mlflow_port: int, ray_dashboard_port: int) -> None:
    console.print(f"  API docs  http://127.0.0.1:{port}/docs")
    console.print(f"  MLflow    {os.environ.get('MLFLOW_TRACKING_URI') or f'http://127.0.0.1:{mlflow_port}'}")
    console.print(f"  Ray       {os.environ.get('RAY_ADDRESS') or f'http://127.0.0.1:{ray_dashboard_port}'}")


def running_pid(h: Path) -> int | None:
    pid_file = h / "serve.pid"
    if not pid_file.is_file():
        return None
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


@app.command()
def stop() -> None:
    """Stop the stack `rskd serve --detach` started, and everything it started."""
    pid_file = home() / "serve.pid"
    if not pid_file.is_file():
        console.print("no detached stack is running here")
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink()
        console.print("the stack had already stopped")
        return
    for _ in range(120):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    console.print("stopped")


# ---------------------------------------------------------------- sweeps


@app.command()
def submit(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON SweepSpec")],
    follow: Annotated[bool, typer.Option(help="a live table of trials until the sweep ends, then the report")] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="resubmitting with the same key returns the same sweep")
    ] = None,
) -> None:
    """Submit a sweep."""
    ctype = "application/json" if spec.suffix == ".json" else "application/yaml"
    headers = {"content-type": ctype, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
    body = _call("POST", "/v1/sweeps", content=spec.read_bytes(), headers=headers)
    console.print(f"sweep [bold]{body['id']}[/] {body['status']}: {body['trials']} trials")
    if follow:
        follow_sweep(body["id"])


def follow_sweep(sweep_id: str, interval: float = 2.0) -> None:
    start = time.monotonic()
    with Live(console=console, refresh_per_second=2) as live:
        while True:
            d = _call("GET", f"/v1/sweeps/{sweep_id}")
            live.update(progress_table(d, time.monotonic() - start))
            if d["status"] in TERMINAL:
                break
            time.sleep(interval)
    if not console.is_terminal:  # piped, Live leaves its last table without a line break
        console.line()
    console.print(f"sweep {sweep_id} {d['status']}" + (f": {d['message']}" if d.get("message") else ""))
    console.print()
    report(sweep_id)
    console.print(f"Dashboard: {base_url()}/dashboards/sweeps/{sweep_id}", soft_wrap=True)
    if d.get("mlflow_url"):
        console.print(f"MLflow:    {d['mlflow_url']}", soft_wrap=True)


def progress_table(d: dict[str, Any], elapsed: float) -> Table:
    states = d.get("trials_by_state", {})
    done = states.get(RunState.FINISHED, 0)
    failed = states.get(RunState.FAILED, 0) + states.get(RunState.KILLED, 0)
    running = states.get(RunState.RUNNING, 0)
    pruned = states.get(PRUNED, 0)
    pending = max(d["trials"] - done - failed - running - pruned, 0)
    eta = "–"
    if done:
        eta = f"{elapsed / done * (pending + running):.0f} s"
    best = d.get("best_objective")
    t = Table(title=f"{d['name']} ({d['id']}) — {d['status']}")
    cols = ("pending", "running", "done", "failed", "pruned", f"best {d['objective']['metric']}", "elapsed", "ETA")
    for col in cols:
        t.add_column(col, justify="right")
    t.add_row(str(pending), str(running), str(done), str(failed), str(pruned), "–" if best is None else f"{best:.4f}",
              f"{elapsed:.0f} s", eta)  # fmt: skip
    return t


@app.command()
def report(
    sweep_id: str,
    format: Annotated[
        str | None, typer.Option(help="md, latex, csv or json (default: a table on a terminal, Markdown when piped)")
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="the baseline of the Δ column (default: the first)")] = None,
) -> None:
    """The comparison table: every variant and baseline, mean ± std over seeds, Δ against a baseline with its 95% CI
    and Holm-corrected p."""
    if format not in (None, "md", "latex", "csv", "json"):
        console.print(f"[red]unknown format {format!r}[/]: use md, latex, csv or json")
        raise typer.Exit(2)
    if format is None and console.is_terminal:
        show_report(sweep_id, baseline)
        return
    format = format or "md"
    params = {"format": format, **({"baseline": baseline} if baseline else {})}
    rep = _call("GET", f"/v1/sweeps/{sweep_id}/report", params=params)
    if format == "json":
        console.print_json(json.dumps(rep))
    else:
        sys.stdout.write(rep)
        sys.stdout.flush()


def show_report(sweep_id: str, baseline: str | None) -> None:
    """The report's JSON, typed, printed as a terminal table with its footnotes."""
    from dashboards.render import note
    from dashboards.report import Report

    rep = Report.model_validate(_call("GET", f"/v1/sweeps/{sweep_id}/report"))
    try:
        console.print(report_table(rep, baseline))
    except ValueError as err:  # a baseline the sweep does not have
        console.print(Text(str(err), style="red"))
        raise typer.Exit(2) from None
    console.print(Text(note(rep)))


def report_table(rep: Report, baseline: str | None) -> Table:
    """The cells of the Markdown table (``dashboards.render.table``: the best of each column bold, Δ with its CI,
    Holm p, † and ‡) as a rich table: no Markdown escapes, variants above a rule, baselines below it."""
    from dashboards.render import table

    header, rows = table(rep, baseline)
    o = rep.objective
    t = Table(title=f"{rep.sweep_id}: {o.metric} ({o.mode}), {rep.trials - rep.excluded} of {rep.trials} trials")
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right")
    n_variants = sum(v.role == "variant" for v in rep.variants)
    for i, cells in enumerate(rows):
        t.add_row(*(Text(c.text, style="bold" if c.bold else "") for c in cells), end_section=i == n_variants - 1)
    return t


@sweeps_app.command("list")
def list_sweeps(status: str | None = None, limit: int = 20) -> None:
    """Sweeps, newest first."""
    page = _call("GET", "/v1/sweeps", params={k: v for k, v in {"status": status, "limit": limit}.items() if v})
    t = Table(title=f"{page['total']} sweeps")
    for col in ("id", "name", "status", "trials", "created"):
        t.add_column(col)
    for s in page["items"]:
        t.add_row(s["id"], escape(s["name"]), s["status"], str(s["trials"]), s["created_at"][:19])
    console.print(t)


@sweeps_app.command("show")
def show(sweep_id: str) -> None:
    """Status, trials by state and the best objective so far."""
    d = _call("GET", f"/v1/sweeps/{sweep_id}")
    console.print(progress_table(d, 0.0))
    if d.get("mlflow_url"):
        console.print(f"MLflow: {d['mlflow_url']}", soft_wrap=True)


@sweeps_app.command("cancel")
def cancel(sweep_id: str) -> None:
    """Stop a sweep's Ray job; its unfinished trials end KILLED."""
    console.print(f"{sweep_id}: {_call('POST', f'/v1/sweeps/{sweep_id}/cancel')['status']}")


@sweeps_app.command("resume")
def resume(sweep_id: str) -> None:
    """Continue a FAILED or CANCELLED sweep (finished trials are not re-run)."""
    console.print(f"{sweep_id}: {_call('POST', f'/v1/sweeps/{sweep_id}/resume')['status']}")


@sweeps_app.command("extend")
def extend(
    sweep_id: str,
    seeds: Annotated[str | None, typer.Option(help="seeds to add, comma-separated: 3,4")] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="YAML/JSON: what to add (seeds, variants, grid, baselines), or a whole spec that contains the sweep's",
        ),
    ] = None,
    to_power: Annotated[
        float | None,
        typer.Option(
            help="also add the seeds the most demanding undecided comparison needs for "
            "this power (e.g. 0.8; an estimate), within the service's trial limit"
        ),
    ] = None,
    reopen: Annotated[
        list[str] | None,
        typer.Option(
            metavar="VARIANT",
            help="a variant racing pruned that gets its new trials after all (repeat for more; by default a pruned "
            "variant gets none)",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="list the new trials; run nothing")] = False,
    follow: Annotated[bool, typer.Option(help="a live table until the sweep ends, then the report")] = False,
    idempotency_key: Annotated[str | None, typer.Option(help="repeating with the same key extends once")] = None,
) -> None:
    """Grow a finished sweep: only the new trials run, under the same MLflow parent run; a variant racing pruned
    gets none unless --reopen names it."""
    body = _extension_body(seeds, spec, reopen or [])
    ctype = "application/json" if spec is None or spec.suffix == ".json" else "application/yaml"
    headers = {"content-type": ctype, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
    params = {k: v for k, v in {"dry_run": "true" if dry_run else None, "to_power": to_power}.items() if v}
    out = _call("POST", f"/v1/sweeps/{sweep_id}/extend", content=body, headers=headers, params=params)
    _show_extension(sweep_id, out)
    if follow and out["job_id"]:
        follow_sweep(sweep_id)


def _show_extension(sweep_id: str, out: dict[str, Any]) -> None:
    """The new trials as a table, those left out because their variant is pruned, and the job."""
    t = Table(title=f"{sweep_id}: {out['new_trials']} new trials" + (" (dry run)" if out["dry_run"] else ""))
    for col in ("trial", "variant", "role", "seed"):
        t.add_column(col)
    for trial in out["trials"]:
        t.add_row(trial["trial_id"], escape(trial["variant"]), trial["role"], str(trial["seed"]))
    console.print(t)
    if out.get("kept_pruned"):
        left = ", ".join(f"{escape(k['variant'])} seed {k['seed']}" for k in out["kept_pruned"])
        console.print(f"left out, their variant was pruned by racing (--reopen VARIANT runs them): {left}")
    if out["job_id"]:
        console.print(f"sweep {sweep_id} {out['sweep']['status']}: job {out['job_id']}")
    elif not out["dry_run"]:
        console.print("nothing new: no job started")


def _extension_body(seeds: str | None, spec: Path | None, reopen: list[str]) -> bytes:
    if spec is not None and (seeds or reopen):
        console.print("[red]give --seeds and --reopen, or --spec (`reopen:` in an additive file), not both[/]")
        raise typer.Exit(2)
    if spec is not None:
        return spec.read_bytes()
    try:
        values = [int(s) for s in seeds.split(",") if s.strip()] if seeds else []
    except ValueError:
        console.print(f"[red]--seeds {seeds!r}[/]: give integers separated by commas, e.g. 3,4")
        raise typer.Exit(2) from None
    return json.dumps({"seeds": values, **({"reopen": reopen} if reopen else {})}).encode()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args, standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
