"""``ReportContents``: what a report holds (its tables, headline, highlights, notes and
flags), the data the charts and the page are drawn from."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class ReportContents:
    """The tables of a report (pandas DataFrames, one per CSV file), its headline and notes."""

    runs: pd.DataFrame
    """summary.csv: one row per run, with the comparison against its baseline."""
    methods: pd.DataFrame
    """methods.csv: one row per method and sweep point, mean and std over finished seeds."""
    epochs: pd.DataFrame
    """epochs.csv: every epoch row of every run, with cumulative totals."""
    phases: pd.DataFrame
    """phases.csv: one row per run and phase: seconds, joules, FLOPs, J/GFLOP."""
    setups: pd.DataFrame
    """setups.csv: energy, time, FLOPs, emissions to target per sweep point, ranked."""
    power: pd.DataFrame
    """The power trace of every run, downsampled (``StoredTrace.overview``'s sketch): run,
    source, time_s (a bin's centre), samples, power_w (mean), power_w_min, power_w_max."""
    power_epochs: pd.DataFrame
    """Power per run, source and epoch: run, source, epoch, samples, time_s_start,
    time_s_end, power_w (mean), power_w_min, power_w_max."""
    environment: pd.DataFrame
    """Distinct environments (GPU, driver, CPU, torch, ...) and the runs on each."""
    energy_sources: pd.DataFrame
    """Energy sources per distinct configuration: provenance, device, reason, idle power."""
    inference: pd.DataFrame
    """inference.csv: every run's final-model inference rows (one per batch size); empty
    when no run has them."""
    gates: pd.DataFrame
    """gates.csv: every gated run's layers: channels and kept units; empty when no run has
    them."""
    ranks: pd.DataFrame
    """ranks.csv: one row per rank of every distributed run: run, run_id, rank, energy_j,
    time_s, flops_total, emissions_kg, node, sources, energy_share; empty when no run has
    ranks."""
    missing: pd.DataFrame
    """missing.csv: the planned runs of the sweeps (their matrix.csv) that have not ended
    yet: run_id, method_label, seed, setup, status (``not started``, ``running``,
    ``interrupted``, ``failed``, ``damaged``); empty when every planned run has ended."""
    headline: str
    """The one-line answer: the method that saved the most energy against the baseline."""
    highlights: tuple[str, ...] = ()
    """One line per compared method and sweep point, and per sweep ranking."""
    notes: tuple[str, ...] = ()
    """What was excluded from means, mixed provenance, missing baselines, empty columns, and
    every flag."""
    damaged: tuple[str, ...] = ()
    """One line per damaged run, left out of every table (its file and what is wrong)."""
    flags: tuple[str, ...] = ()
    """Runs measured on a busy or noisy machine, and idle power that drifted between runs
    (thresholds in :mod:`.noise`); empty on a quiet machine."""
    title: str = ""
    baseline: str = "dense"
    target_accuracy: float | None = None
    sources: tuple[str, ...] = ()
    sampling: pd.DataFrame = field(default_factory=pd.DataFrame)
    """sampling.csv: every generation run's metered sampling, one row per sampled epoch;
    empty when no run has them."""
    grids: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Each generation run's last sample grid (``png_base64``, ``epoch`` from 0) with its
    final ``val_denoise_loss``, last ``fd_classifier`` and sampling cost (not a CSV file)."""
