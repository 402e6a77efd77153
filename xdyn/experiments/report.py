"""One static HTML page of every experiment's results, next to the anchors.

``xdyn report [DIR]`` (and the end of ``xdyn run --all``) reads every
``DIR/<run>/summary.csv`` -- never a printed table -- and the figures beside
it, and writes ``DIR/report.html`` and ``DIR/report.csv``: one table per
family (the module that registers the experiment), xdyn's numbers side by
side with the DAPPER number the run recorded (``reference_value``) and the
anchors of ``anchors.csv``, and whether each target is met. Each row shows
the seed of its run. An experiment that failed in the last ``xdyn run
--all`` (``DIR/run_all.csv``) keeps its earlier folder: its rows are marked
stale, with when that earlier run wrote them, and its targets are not counted.

``anchors.csv`` holds, once, the reference numbers of the original papers and
of DAPPER that are not in :mod:`xdyn.experiments.setups`, each with its
source: columns ``experiment, method, metric, settings`` (``k=v;k=v`` that a
row's settings must match; empty matches any), ``anchor, units, kind``
(``paper`` or ``DAPPER``), ``target`` (``<=x``, ``>=x`` or a range ``lo..hi``;
empty: shown, not judged) and ``source``. Method ``*`` compares the best
row of the experiment for that metric.
"""

from __future__ import annotations

import csv
import datetime
import html
import importlib.resources
import io
import math
import warnings
from pathlib import Path

import pandas as pd

from xdyn.datasets.registry import atomic_path
from xdyn.experiments.catalogue import restore_interrupted

__all__ = ["load_anchors", "collect_summaries", "build_report", "write_report", "target_met"]

_BASE = ("experiment", "method", "metric", "value", "units", "lower_is_better")
# run bookkeeping, not settings that tell rows apart
_NOT_SETTINGS = {"quick", "seed", "status", "reference_value"}
_FIGURES = ("*.png", "*.gif", "*.svg")
REPORT_COLUMNS = ["family", "experiment", "method", "metric", "settings", "value", "units",
                  "quick", "dapper", "anchor", "anchor_kind", "target", "met", "source",
                  "status", "seed", "stale"]


def load_anchors() -> pd.DataFrame:
    """The reference numbers shipped with xdyn (``xdyn/experiments/anchors.csv``).

    Examples
    --------
    >>> anchors = load_anchors()
    >>> row = anchors[(anchors.experiment == "lorenz96-twin-partial")].iloc[0]
    >>> float(row.anchor), row.target, row.kind
    (0.617, '<=0.6', 'DAPPER')
    """
    path = importlib.resources.files("xdyn.experiments") / "anchors.csv"
    with importlib.resources.as_file(path) as p:
        anchors = pd.read_csv(p, dtype={"settings": str, "target": str})
    return anchors.fillna({"settings": "", "target": "", "units": "", "source": ""})


def target_met(value, target: str):
    """Whether ``value`` meets ``target`` (``"<=x"``, ``">=x"``, ``"lo..hi"``); None if no target.

    Parameters
    ----------
    value : float or str
        The measured value; a non-finite one meets no target.
    target : str
        ``"<=x"``, ``">=x"`` or an inclusive range ``"lo..hi"``; empty (or NaN)
        for none.

    Returns
    -------
    bool or None
        None also where ``value`` is not a number.

    Raises
    ------
    ValueError
        If ``target`` has none of the three forms.

    Examples
    --------
    >>> target_met(0.58, "<=0.6"), target_met(70, "63..73"), target_met(0.3, ">=0.5")
    (True, True, False)
    >>> target_met(0.58, "") is None
    True
    """
    target = str(target or "").strip()
    if not target or target == "nan":
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value):
        return False
    if target.startswith("<="):
        return value <= float(target[2:])
    if target.startswith(">="):
        return value >= float(target[2:])
    if ".." in target:
        lo, hi = (float(t) for t in target.split(".."))
        return lo <= value <= hi
    raise ValueError(f"anchors.csv: target {target!r} is not '<=x', '>=x' or 'lo..hi'")


def collect_summaries(directory) -> pd.DataFrame:
    """Every ``summary.csv`` one level under ``directory``, with ``folder`` and ``settings``.

    ``settings`` is the row's settings columns as ``k=v; k=v`` (as written in
    its file; bookkeeping such as ``quick`` and ``seed`` left out). Staging
    folders (names starting with ``.``) are skipped: runs in progress or left
    by a killed one; the results a run killed mid-move had set aside are put
    back first (:func:`~xdyn.experiments.catalogue.restore_interrupted`). A
    file that cannot be read (cut short, another tool's) is skipped with a
    warning that names it.

    Parameters
    ----------
    directory : str or Path
        The output folder of ``xdyn run`` (one sub-folder per run).

    Returns
    -------
    pandas.DataFrame
        Columns ``experiment, method, metric, value, units, lower_is_better,
        settings, folder, quick, seed, reference_value, status`` (``seed`` as
        written, empty where the file has none); empty when no run is found.

    Examples
    --------
    >>> import tempfile
    >>> collect_summaries(tempfile.mkdtemp()).empty
    True
    """
    restore_interrupted(directory)
    frames = []
    for path in sorted(Path(directory).glob("*/summary.csv")):
        if path.parent.name.startswith("."):
            continue
        try:
            frame = _read_summary(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
                ValueError) as err:
            # one bad file (a copy cut short) must not cost the report of every other run
            warnings.warn(f"report: skipped {path}: cannot read it ({err}); rerun that "
                          "experiment or remove its folder", stacklevel=2)
            continue
        extra = [c for c in frame.columns if c not in _BASE and c not in _NOT_SETTINGS]
        frame["settings"] = ["; ".join(f"{c}={row[c]}" for c in extra if row[c] != "")
                             for _, row in frame.iterrows()]
        frame["folder"] = path.parent.name
        frames.append(frame)
    columns = [*_BASE, "settings", "folder", "quick", "seed", "reference_value", "status"]
    if not frames:
        return pd.DataFrame(columns=columns)
    table = pd.concat(frames, ignore_index=True).reindex(columns=columns).astype(object)
    table = table.where(table.notna(), "")
    for c in ("value", "reference_value"):
        table[c] = pd.to_numeric(table[c], errors="coerce")
    table["quick"] = table["quick"] == "1"
    table["lower_is_better"] = table["lower_is_better"].map(
        {"True": True, "False": False}).astype(object)
    return table


def _read_summary(path):
    """``summary.csv`` as strings, refused when cut short (not ending its last row, a row
    with fewer fields than the header, a base column missing).

    xdyn writes it atomically, but a copy cut mid-row (rsync, a full disk elsewhere)
    would otherwise be padded by pandas and its truncated number reported as measured.
    """
    text = Path(path).read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        raise ValueError("the file does not end with a complete row")
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    missing = [c for c in _BASE if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} are missing")
    n_fields = [len(row) for row in csv.reader(io.StringIO(text)) if row]
    short = [i for i, n in enumerate(n_fields[1:], start=2) if n != n_fields[0]]
    if short:
        raise ValueError(f"line {short[0]} has {n_fields[short[0] - 1]} fields, the header "
                         f"{n_fields[0]}")
    return frame


def _family(experiment: str) -> str:
    from xdyn.experiments.catalogue import _REGISTRY

    entry = _REGISTRY.get(experiment)
    return entry.func.__module__.rsplit(".", 1)[-1].replace("_", " ") if entry else "other"


def _parse_settings(text: str) -> dict:
    pairs = (item.partition("=") for item in text.split(";") if item.strip())
    return {k.strip(): v.strip() for k, _, v in pairs}


def _matches(anchor_settings: str, settings: dict) -> bool:
    for key, want in _parse_settings(anchor_settings).items():
        have = settings.get(key)
        if have is None:
            return False
        try:
            if not math.isclose(float(have), float(want), rel_tol=1e-9):
                return False
        except ValueError:
            if str(have).strip().lower() != want.strip().lower():
                return False
    return True


def build_report(directory, anchors: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of the report: each xdyn row with its anchors, and anchors no row matched.

    Parameters
    ----------
    directory : str or Path
        The output folder of ``xdyn run`` (read by :func:`collect_summaries`).
    anchors : pandas.DataFrame, optional
        Reference numbers with the columns of ``anchors.csv``; default
        :func:`load_anchors`.

    Returns
    -------
    pandas.DataFrame
        Columns ``family, experiment, method, metric, settings, value, units,
        quick, dapper, anchor, anchor_kind, target, met, source, status, seed,
        stale`` (``met``: True, False, or empty where there is no target or no
        xdyn value; ``status``: the run's, e.g. "diverged" for a method with no
        value; ``seed``: the run's; ``stale``: empty, or why the numbers are not
        from the last ``run_all`` -- its attempt at that experiment failed).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xdyn.experiments.catalogue import write_summary
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"method": "LETKF", "metric": "analysis RMSE", "value": 0.58, "units": "1",
    ...          "lower_is_better": True}]
    >>> _ = write_summary(rows, out / "lorenz96-twin-partial" / "summary.csv",
    ...                   "lorenz96-twin-partial", seed=0)
    >>> report = build_report(out)
    >>> mine = report[report.experiment == "lorenz96-twin-partial"].iloc[0]
    >>> float(mine.value), float(mine.anchor), mine.target, mine.met
    (0.58, 0.617, '<=0.6', True)
    """
    anchors = load_anchors() if anchors is None else anchors
    table = collect_summaries(directory)
    stale = _stale_folders(Path(directory))
    rows, used = [], set()
    for _, r in table.iterrows():
        r = r.to_dict()
        settings = _parse_settings(r["settings"])
        base = {"family": _family(r["experiment"]), "experiment": r["experiment"],
                "method": r["method"], "metric": r["metric"], "settings": r["settings"],
                "value": r["value"], "units": r["units"], "quick": bool(r["quick"]),
                "dapper": r["reference_value"], "anchor": float("nan"),
                "anchor_kind": "", "target": "", "met": None, "source": "",
                "status": r["status"], "seed": r["seed"], "stale": stale.get(r["folder"], "")}
        found = anchors[(anchors.experiment == r["experiment"])
                        & (anchors.metric.str.lower() == str(r["metric"]).lower())]
        matched = False
        for i, a in found.iterrows():
            if a.method == "*":
                if not _is_best(table, r):
                    continue
            elif a.method.lower() != str(r["method"]).lower():
                continue
            if not _matches(a.settings, settings):
                continue
            used.add(i)
            matched = True
            rows.append({**base, "anchor": a.anchor, "anchor_kind": a.kind, "target": a.target,
                         "met": target_met(r["value"], a.target),
                         "source": a.source})
        if not matched:
            rows.append(base)
    for i, a in anchors.iterrows():
        if i in used:
            continue
        rows.append({"family": _family(a.experiment), "experiment": a.experiment,
                     "method": a.method, "metric": a.metric, "settings": a.settings.replace(";", "; "),
                     "value": float("nan"), "units": a.units, "quick": False,
                     "dapper": float("nan"), "anchor": a.anchor, "anchor_kind": a.kind,
                     "target": a.target, "met": None, "source": a.source, "status": "",
                     "seed": "", "stale": ""})
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def _read_runs(directory: Path):
    """``run_all.csv`` of ``directory`` (the outcomes of the last ``run_all``), or None."""
    path = directory / "run_all.csv"
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            ValueError) as err:
        warnings.warn(f"report: skipped {path}: cannot read it ({err})", stacklevel=3)
        return None


# The note run_all leaves in a failed experiment's folder, whose results are an earlier
# run's; the next run that writes the folder replaces it whole, note and all. A file, not
# file times: a folder copied without its times (cp -r, scp -r) stays stale.
STALE_NOTE = "STALE.txt"


def _stale_folders(directory: Path) -> dict:
    """Folder name -> why its numbers are stale (the text of its :data:`STALE_NOTE`)."""
    return {note.parent.name: note.read_text().strip()
            for note in sorted(directory.glob(f"*/{STALE_NOTE}"))}


def mark_stale(folder: Path, error: str):
    """Leave :data:`STALE_NOTE` in ``folder`` when it holds an earlier run's results."""
    summary = folder / "summary.csv"
    if not summary.is_file():
        return
    written = datetime.datetime.fromtimestamp(summary.stat().st_mtime, datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    with atomic_path(folder / STALE_NOTE) as tmp:
        Path(tmp).write_text(f"failed in the last run_all ({now:%Y-%m-%d %H:%M} UTC: "
                             f"{error.splitlines()[0] if error else 'no error recorded'}); "
                             f"numbers from an earlier run written {written:%Y-%m-%d %H:%M} "
                             "UTC\n")


def _is_best(table, r) -> bool:
    """Whether row ``r`` is the best of its experiment's rows for its metric (same run)."""
    same = table[(table.experiment == r["experiment"]) & (table.metric == r["metric"])
                 & (table.folder == r["folder"])]
    values = pd.to_numeric(same.value, errors="coerce").dropna()
    if values.empty:
        return False
    lower = r["lower_is_better"] is not False
    best = values.min() if lower else values.max()
    return float(r["value"]) == float(best)


# ------------------------------------------------------------------ HTML
_STYLE = """
body{font-family:sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:2px 6px;font-size:0.9em}
th{background:#eee} td.num{text-align:right;font-family:monospace}
td.met{background:#d8f0d8} td.missed{background:#f6d5d5} tr.noxdyn td{color:#777}
figure{display:inline-block;margin:0.5em} img{max-width:28em;border:1px solid #ccc}
"""


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _status(status) -> str:
    """What a row without a value shows: its run's status (a diverged method), or that no
    run made it."""
    status = _fmt(status)
    return status if status not in ("", "ok") else "not run"


def _family_table(rows: pd.DataFrame) -> str:
    head = ["experiment", "method", "metric", "settings", "xdyn", "units", "DAPPER (run)",
            "anchor", "kind", "target", "met", "source", "run"]
    out = ["<table>", "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for _, r in rows.iterrows():
        no_value = isinstance(r.value, float) and math.isnan(r.value)
        met = r.met
        if met is None or (isinstance(met, float) and math.isnan(met)):
            met_cell = "<td></td>" if not r.target or no_value else "<td>no value</td>"
        else:
            word = "met" if met else "missed"
            note = " (stale)" if r.stale else " (quick run)" if r.quick else ""
            met_cell = f'<td class="{word}">{word}{note}</td>'
        cells = [r.experiment + (" (quick)" if r.quick else ""), r.method, r.metric, r.settings]
        run = "; ".join(t for t in (f"seed {_fmt(r.seed)}" if _fmt(r.seed) else "",
                                    f"stale: {r.stale}" if r.stale else "") if t)
        out.append(f'<tr{" class=noxdyn" if no_value else ""}>'
                   + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in cells)
                   + f'<td class="num">{_fmt(r.value) or _status(r.status)}</td>'
                   + f"<td>{html.escape(_fmt(r.units))}</td>"
                   + f'<td class="num">{_fmt(r.dapper)}</td>'
                   + f'<td class="num">{_fmt(r.anchor)}</td>'
                   + f"<td>{html.escape(_fmt(r.anchor_kind))}</td>"
                   + f"<td>{html.escape(_fmt(r.target))}</td>" + met_cell
                   + f"<td>{html.escape(_fmt(r.source))}</td>"
                   + f"<td>{html.escape(run)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _figures_html(directory: Path, folder: str) -> str:
    paths = sorted(p for pattern in _FIGURES for p in (directory / folder).glob(pattern))
    links = " · ".join(f'<a href="{html.escape(folder)}/{name}">{name}</a>'
                       for name in ("summary.csv", "results.nc") if (directory / folder / name).exists())
    figs = "".join(f'<figure><img src="{html.escape(folder)}/{html.escape(p.name)}" '
                   f'alt="{html.escape(folder)}: {html.escape(p.stem)}">'
                   f"<figcaption>{html.escape(p.stem)}</figcaption></figure>" for p in paths)
    return f"<h3>{html.escape(folder)}</h3><p>{links}</p>{figs}"


def _runs_table(directory: Path) -> str:
    runs = _read_runs(directory)  # numbers shown to 4 digits, empty cells (NaN) blank
    if runs is None:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in runs.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in runs.itertuples(index=False))
    return (f"<h2>Runs</h2><p>Wall time and peak memory of each run, and its worker "
            f"(<a href=\"run_all.csv\">run_all.csv</a>).</p><table><tr>{head}</tr>{body}</table>")


def write_report(directory="xdyn-results") -> dict:
    """Write ``report.html`` and ``report.csv`` into ``directory`` from its runs' outputs.

    Parameters
    ----------
    directory : str or Path, default "xdyn-results"
        The ``--out`` folder of ``xdyn run``: one sub-folder per run.

    Returns
    -------
    dict
        ``{"html": path, "csv": path}``.

    Raises
    ------
    ValueError
        ``directory`` is not a folder, or the report cannot be written there
        (naming the folder and the OS error).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import matplotlib.pyplot as plt
    >>> from xdyn.experiments.catalogue import write_summary
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"method": "EnKF", "metric": "analysis RMSE", "value": 0.2, "units": "1",
    ...          "lower_is_better": True}]
    >>> _ = write_summary(rows, out / "demo" / "summary.csv", "demo", seed=0)
    >>> plt.figure().savefig(out / "demo" / "panel.png"); plt.close("all")
    >>> paths = write_report(out)
    >>> sorted(paths), '<img src="demo/panel.png"' in paths["html"].read_text()
    (['csv', 'html'], True)
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"report: {str(directory)!r} is not a folder of experiment runs "
                         "(the --out folder of `xdyn run`)")
    report = build_report(directory)
    csv_path, html_path = directory / "report.csv", directory / "report.html"
    ran = report[~report.value.isna()]
    # a run without a value (a diverged method) misses its target; quick and stale runs apart
    stale = report.stale != ""
    judged = report[report.met.notna() & ~report.quick & ~stale]
    quick = report[report.met.notna() & report.quick & ~stale]
    notes = (f" Quick runs: {int(quick.met.astype(bool).sum())} of {len(quick)} met "
             "(shortened: not comparable with the anchors)." if len(quick) else "")
    if stale.any():
        names = ", ".join(sorted(report[stale].experiment.unique()))
        notes += (f" Stale, not counted: {names} failed in the last run_all (see Runs); "
                  "their rows show an earlier run's numbers.")
    parts = ["<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>xdyn report</title>",
             f"<style>{_STYLE}</style></head><body><h1>xdyn results</h1>",
             f"<p>{len(ran)} xdyn rows from {ran.experiment.nunique()} experiments in "
             f"{html.escape(str(directory))}; {int(judged.met.astype(bool).sum())} of "
             f"{len(judged)} targets met by full-size runs.{notes} Generated "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC from each run's "
             "summary.csv (<a href=\"report.csv\">report.csv</a>). Quick runs are shortened: "
             "their numbers are not comparable with the anchors.</p>",
             "<p>Columns: <i>DAPPER (run)</i> is the number DAPPER gives on the run's own setup "
             "(recorded by the experiment); <i>anchor</i> a published or DAPPER number from "
             "xdyn's anchors.csv with its source; <i>target</i> what xdyn aims at; <i>run</i> "
             "the seed of the run that wrote the row, and whether it is stale.</p>",
             _runs_table(directory)]
    with warnings.catch_warnings():  # build_report warned of unreadable files already
        warnings.simplefilter("ignore")
        folders = collect_summaries(directory)
    for family, rows in report.groupby("family", sort=True):
        parts.append(f"<h2>{html.escape(family)}</h2>")
        parts.append(_family_table(rows))
        for folder in sorted(folders.query("experiment in @rows.experiment").folder.unique()):
            parts.append(_figures_html(directory, folder))
    parts.append("</body></html>")
    try:
        with atomic_path(csv_path) as tmp:
            report.to_csv(tmp, index=False)
        with atomic_path(html_path) as tmp:
            Path(tmp).write_text("\n".join(parts), encoding="utf-8")
    except OSError as err:  # named by the folder: the temporary file's name tells nothing
        raise ValueError(f"report: cannot write report.csv and report.html in "
                         f"{str(directory)!r}: {err.strerror or err} ({type(err).__name__})"
                         ) from None
    return {"html": html_path, "csv": csv_path}
