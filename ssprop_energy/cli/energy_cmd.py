"""``ssprop-energy env`` and ``ssprop-energy measure -- CMD ARGS...``."""

from __future__ import annotations

import contextlib
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..profilers import EnergyMeter, environment_meta
from ..profilers.carbon import JOULES_PER_KWH
from ..profilers.versions import driver_version, installed_version, package_versions
from ..provenance import combine_sources
from ..store import atomic_write_csv
from ._app import app, user_errors

Country = Annotated[
    str,
    typer.Option(help="ISO 3166-1 alpha-3 country code for the carbon intensity (e.g. USA, FRA)."),
]
Region = Annotated[
    str | None,
    typer.Option(help="Region within the country (USA/CAN/CHN states or provinces, Nordic zones)."),
]
UseCodeCarbon = Annotated[
    bool,
    typer.Option(help="Run CodeCarbon's offline tracker (and use its CPU model without RAPL)."),
]


def _sources_table(meter: EnergyMeter) -> Table:
    table = Table("source", "provenance", "device", "reason")
    for s in meter.sources:
        table.add_row(s.name, s.provenance, s.device or "-", s.reason or "-")
    return table


def codecarbon_comparison(cc: dict[str, Any], meter_j: float | None) -> str:
    """CodeCarbon's own figure beside the meter's: how far apart they are, and why."""
    joules = {
        k: float(cc.get(f"{k}_energy") or 0.0) * JOULES_PER_KWH for k in ("cpu", "ram", "gpu")
    }
    total = float(cc["energy_consumed"]) * JOULES_PER_KWH
    parts = ", ".join(f"{k.upper()} {j:.3f}" for k, j in joules.items())
    ratio = f"{total / meter_j:.2f} times the meter's" if meter_j else "the meter has no figure"
    version = installed_version("codecarbon") or "unknown"
    return (
        f"CodeCarbon's own figure (not the one to quote): energy_j {total:.3f} ({parts}), "
        f"emissions_kg {float(cc['emissions']):.3e}; {ratio}. It differs because it is "
        f"CodeCarbon {version}'s own model (its CPU power model depends on its version, and "
        "it adds RAM power) over the meter's whole life (start-up, --idle and the command), "
        "while the meter's figure covers the command only, from its energy sources."
    )


@app.command()
@user_errors
def env(
    country: Country = "USA",
    region: Region = None,
    codecarbon: UseCodeCarbon = True,
) -> None:
    """List the energy sources this machine offers, with provenance and why any is missing."""
    meter = EnergyMeter(codecarbon=codecarbon, country=country, region=region)
    with meter:
        table = _sources_table(meter)
        environment = environment_meta(meter)
        driver = driver_version(meter.hardware)
    console = Console()
    console.print(table)
    gpus = ", ".join(environment["gpus"]) or "none"
    console.print(f"GPUs: {gpus}; CPU: {environment['cpu']}")
    versions = package_versions()
    console.print(
        "versions: "
        + ", ".join(f"{v.name} {v.version or 'not installed'}" for v in versions)
        + f"; NVIDIA driver {driver}"
    )
    for v in versions:
        if v.warning is not None:
            console.print(f"warning: {v.warning}")
    console.print(
        f"carbon intensity ({meter.country}"
        f"{'/' + region if region else ''}): "
        f"{meter.carbon_intensity_g_per_kwh:.1f} g CO2eq/kWh"
    )


FORWARDED = (signal.SIGTERM, signal.SIGHUP)
"""Signals ``measure`` passes on to its command (and then waits for it)."""
CTRL_C_GRACE_S = 5.0
"""After Ctrl-C (which the command gets from the terminal too), how long ``measure`` waits for
the command to stop before it sends SIGTERM."""


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode  # killed by signal -returncode


def run_forwarding(command: list[str]) -> int:
    """Run ``command`` and wait for it; SIGTERM and SIGHUP to this process are forwarded to
    it (a signal this process ignores, e.g. SIGHUP under nohup, stays ignored), and it is
    waited for, so the figures cover it to its end. The exit code: the command's (128 + the
    signal when a signal killed it), or 128 + the signal this process got (130 for Ctrl-C)."""
    child = subprocess.Popen(command)
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {}
    for signum in FORWARDED:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, forward)
    try:
        try:
            code = _exit_code(child.wait())
        except KeyboardInterrupt:  # the command got Ctrl-C from the terminal as well
            received.append(signal.SIGINT)
            try:
                child.wait(CTRL_C_GRACE_S)
            except subprocess.TimeoutExpired:
                child.terminate()
            code = _exit_code(child.wait())
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 + received[0] if received else code


@app.command(context_settings={"ignore_unknown_options": True})
@user_errors
def measure(
    command: Annotated[list[str], typer.Argument(help="The command to run, after `--`.")],
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Also write the figures as one CSV row.")
    ] = None,
    country: Country = "USA",
    region: Region = None,
    interval: Annotated[float, typer.Option(help="Sampler period in seconds.")] = 0.1,
    idle: Annotated[float, typer.Option(help="Seconds of idle power to measure first.")] = 0.0,
    codecarbon: UseCodeCarbon = True,
) -> None:
    """Run CMD and print its time, energy per source, emissions and provenance.

    The command's exit code is passed through; a command killed by a signal gives 128 +
    the signal (137 for SIGKILL), as a shell does. SIGTERM and SIGHUP are forwarded to the
    command, which is waited for; the figures are printed and the exit code is 128 + the
    signal (143, 129; Ctrl-C: 130)."""
    if csv is not None and csv.is_dir():
        raise UserError(f"--csv: {csv} is a folder; give the path of a CSV file")
    meter = EnergyMeter(codecarbon=codecarbon, country=country, region=region, interval_s=interval)
    with meter:
        idle_w = meter.measure_idle(idle)
        meter.begin("command")
        try:
            code = run_forwarding(command)
        except FileNotFoundError:
            raise UserError(f"command not found: {command[0]}") from None
        except OSError as exc:
            raise UserError(f"{command[0]}: cannot run it ({exc.strerror})") from None
        finally:
            result = meter.end("command")
    console = Console()
    table = Table("source", "energy_j", "power_w", "idle_w", "provenance")
    for name, energy in result.energy_j.items():
        table.add_row(
            name,
            "-" if energy is None else f"{energy:.3f}",
            "-" if energy is None else f"{energy / result.time_s:.2f}",
            f"{idle_w[name]:.2f}" if name in idle_w else "-",
            result.provenance[name],
        )
    console.print(table)
    total = result.total_energy_j
    console.print(f"time_s: {result.time_s:.3f}")
    if total is None:
        console.print("energy_j: no source has a figure on this machine (see `ssprop-energy env`)")
    else:
        label = combine_sources(result.provenance.values())
        console.print(
            f"energy_j: {total:.3f} ({label}; the meter's figure for the command: quote this "
            f"one)  emissions_kg: {meter.emissions_kg(total):.3e} "
            f"({meter.country}, {meter.carbon_intensity_g_per_kwh:.1f} g/kWh)"
        )
    if meter.codecarbon_result is not None:
        console.print(codecarbon_comparison(meter.codecarbon_result, total), markup=False)
    if csv is not None:
        frame = meter.summary()
        frame.insert(0, "command", shlex.join(command))
        frame["exit_code"] = code
        atomic_write_csv(csv, frame)
    raise typer.Exit(code)
