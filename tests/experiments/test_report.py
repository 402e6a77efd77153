"""``xdyn report``: tables per family next to the anchors, targets judged, figures linked.

The page is checked in a headless browser when one is installed (Chromium from
the distribution's packages) and always by parsing its HTML.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from xdyn.experiments.catalogue import write_summary
from xdyn.experiments.report import (build_report, collect_summaries, load_anchors, target_met,
                                     write_report)


def _run(out: Path, name: str, rows, figures=("panel",)):
    write_summary(rows, out / name / "summary.csv", name, quick=0, seed=0)
    for fig_name in figures:
        fig = plt.figure(figsize=(2, 2))
        fig.subplots().plot([0, 1, 0])
        fig.savefig(out / name / f"{fig_name}.png")
    (out / name / "results.nc").write_bytes(b"")  # linked, not read


def _row(method, metric, value, **settings):
    return {"method": method, "metric": metric, "value": value, "units": "1",
            "lower_is_better": True, **settings}


@pytest.fixture
def results(tmp_path):
    _run(tmp_path, "lorenz96-twin-partial",
         [_row("LETKF N=40 infl 1.05 r=4", "analysis RMSE", 0.58),
          _row("EnKF sqrt N=40 infl 1.05", "analysis RMSE", 0.93)])
    _run(tmp_path, "lorenz96-twin",
         [{**_row("EnKF sqrt N=28 infl 1.02 rot", "analysis RMSE", 0.25), "reference_value": 0.179},
          _row("OI", "analysis RMSE", 0.95)], figures=("twin_panel", "rmse_spread"))
    _run(tmp_path, "user-experiment", [_row("mine", "skill", 1.5, lead_time=6)])
    (tmp_path / ".lorenz96-twin.123.staging-x").mkdir()  # a run in progress: not read
    return tmp_path


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.rows, self.images, self.links, self.headings = 0, [], [], [], []
        self._row, self._cell, self._tag = None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._tag = tag
        if tag == "table":
            self.tables += 1
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        self._tag = None
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        elif self._tag == "h2":
            self.headings.append(data)


def test_report_tables_targets_and_figures(results):
    paths = write_report(results)
    page = _Page()
    page.feed(paths["html"].read_text())
    # one table per family: the twin experiments' module, and "other" for an unknown run
    assert "twin" in page.headings and "other" in page.headings
    assert page.tables == len(page.headings)
    cells = {tuple(r[:3]): r for r in page.rows if r and len(r) > 10}
    partial = cells[("lorenz96-twin-partial", "LETKF N=40 infl 1.05 r=4", "analysis RMSE")]
    # the best row of the experiment is judged against the target (<= 0.6)
    assert partial[4] == "0.58" and partial[7] == "0.617" and partial[9] == "<=0.6"
    assert partial[10] == "met"
    enkf = cells[("lorenz96-twin", "EnKF sqrt N=28 infl 1.02 rot", "analysis RMSE")]
    assert enkf[6] == "0.179" and enkf[10] == "missed"  # 0.25 > 0.191
    # an anchor that no run has produced is listed as such
    assert any(r[4] == "not run" for r in page.rows if r and len(r) > 10)
    # every image and link resolves to a file beside the page
    assert len(page.images) == 4
    for ref in page.images + page.links:
        assert (results / ref).is_file(), ref
    assert not any(".staging" in ref for ref in page.images + page.links)

    table = pd.read_csv(paths["csv"])
    mine = table[table.experiment == "user-experiment"].iloc[0]
    assert mine.settings == "lead_time=6" and mine.value == 1.5
    assert set(table.columns) >= {"family", "anchor", "target", "met", "source"}
    assert len(table) == len(build_report(results))


def test_anchors_are_data_with_sources():
    anchors = load_anchors()
    assert len(anchors) > 30
    assert anchors.source.str.len().gt(10).all() and anchors.kind.isin(["paper", "DAPPER"]).all()
    for target in anchors.target:
        target_met(1.0, target)  # every target parses
    assert not anchors.duplicated(["experiment", "method", "metric", "settings", "kind",
                                   "source"]).any()


def test_target_rules():
    assert target_met(0.6, "<=0.6") and not target_met(0.61, "<=0.6")
    assert target_met(0.7, ">=0.5") and not target_met(float("nan"), "<=1")
    assert target_met(68, "63..73") and not target_met(78, "63..73")
    with pytest.raises(ValueError, match="target"):
        target_met(1.0, "about 2")


def test_report_of_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        write_report(tmp_path / "nothing-here")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "summary.csv").write_text("")  # a run's file, unreadable
    # skipped with a warning naming it: one bad file does not cost the whole report
    with pytest.warns(UserWarning, match="skipped .*broken/summary.csv: cannot read"):
        write_report(tmp_path)
    assert (tmp_path / "report.html").is_file()


def test_a_summary_cut_short_is_refused_not_read_padded(tmp_path):
    # pandas pads a row cut mid-number: "0.6521" cut to "0." was reported as 0.0, met <= 0.6
    path = write_summary([{"method": "LETKF", "metric": "analysis RMSE", "value": 0.6521,
                           "units": "1", "lower_is_better": True}],
                         tmp_path / "cut" / "summary.csv", "lorenz96-twin", quick=0, seed=0)
    text = path.read_text()
    assert collect_summaries(tmp_path)["value"].tolist() == [0.6521]
    path.write_text(text[:text.index("0.6521") + 2])
    with pytest.warns(UserWarning, match="skipped .*cut/summary.csv: cannot read .*complete row"):
        assert collect_summaries(tmp_path).empty
    path.write_text(text[:text.index("0.6521") + 2] + "\n")
    with pytest.warns(UserWarning, match="skipped .*cut/summary.csv: cannot read .*line 2 has"):
        report = build_report(tmp_path)
    assert report.value.isna().all()  # the cut number is not reported as measured


def test_results_a_killed_move_set_aside_are_read_and_put_back(results):
    """Killed between the two renames of its move, a run left its last results only as
    ``.<name>.<pid>.staging-old``: read as never run before. A living run's are left."""
    import os

    from xdyn.experiments.run_all import is_complete

    os.replace(results / "lorenz96-twin", results / ".lorenz96-twin.999999999.staging-old")
    alive = results / f".user-experiment.{os.getpid()}.staging-old"
    os.replace(results / "user-experiment", alive)
    table = collect_summaries(results)
    assert "lorenz96-twin" in set(table["folder"]) and (results / "lorenz96-twin").is_dir()
    assert "user-experiment" not in set(table["folder"]) and alive.is_dir()
    os.replace(results / "lorenz96-twin-partial",
               results / ".lorenz96-twin-partial.999999999.staging-old")
    assert not is_complete(results, "lorenz96-twin-partial")  # no results.nc to open
    assert (results / "lorenz96-twin-partial" / "summary.csv").is_file()


def test_a_diverged_method_misses_its_target_and_quick_runs_are_counted_apart(tmp_path):
    # the diverged row showed "not run" and left the headline: "0 of 0 targets met"
    _run(tmp_path, "lorenz96-twin",
         [{**_row("EnKF sqrt N=28 infl 1.02 rot", "analysis RMSE", float("nan")),
           "status": "diverged"}])
    write_summary([_row("LETKF N=40 infl 1.05 r=4", "analysis RMSE", 0.55)],
                  tmp_path / "lorenz96-twin-partial-quick" / "summary.csv",
                  "lorenz96-twin-partial", quick=1, seed=0)
    page = _Page()
    page.feed(write_report(tmp_path)["html"].read_text())
    cells = {tuple(r[:3]): r for r in page.rows if r and len(r) > 10}
    row = cells[("lorenz96-twin", "EnKF sqrt N=28 infl 1.02 rot", "analysis RMSE")]
    assert row[4] == "diverged" and row[10] == "missed"
    text = (tmp_path / "report.html").read_text()
    assert "0 of 1 targets met by full-size runs" in text and "Quick runs: 1 of 1 met" in text


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="no headless Chromium installed (the HTML is checked by parsing)")
def test_report_renders_in_a_headless_browser(results):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    page = write_report(results)["html"]
    script = ("<script>window.onload=()=>{document.title=[...document.images]"
              ".filter(i=>i.naturalWidth>0).length+' images, '"
              "+document.querySelectorAll('table').length+' tables'}</script>")
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    dom = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox",
                          "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    parsed = _Page()
    parsed.feed(page.read_text())
    # every image loaded, and one table per family (those run and those with anchors only)
    assert len(parsed.headings) >= 2
    assert f"<title>4 images, {len(parsed.headings)} tables</title>" in dom


def test_every_era5_forecast_anchor_pairs_with_the_experiments_own_rows(tmp_path, monkeypatch):
    """The anchors name rows as the experiment writes them (method, metric, a
    ``variable`` setting, units): from ``era5-forecast``'s own summary, on xdyn's
    test set with persistence standing in for every method, no anchor is "not run".
    (The experiment wrote ``z500 latitude-weighted RMSE`` and ``VGBDM``, the
    anchors ``latitude-weighted RMSE;variable=z500`` and ``VGB-DM``: none paired.)"""
    from xdyn.experiments.era5 import _wb_forecasters, weatherbench_experiment
    from xdyn.experiments.report import _parse_settings
    from xdyn.forecast import Persistence

    anchors = load_anchors()
    mine = anchors[anchors.experiment == "era5-forecast"].reset_index(drop=True)
    assert len(mine) == 14
    wanted = [_parse_settings(s) for s in mine.settings]
    leads = sorted({int(s["lead_time"]) for s in wanted})
    assert set(leads) <= set(range(6, 145, 6))  # leads the full experiment forecasts
    methods = _wb_forecasters(False, True, 0, "cpu", False)
    monkeypatch.setenv("XDYN_DATA_DIR", str(tmp_path / "none"))  # no WeatherBench: test set
    with pytest.warns(UserWarning, match="NOT ERA5"):
        res = weatherbench_experiment(leads=leads, test_set_days=3,
                                      forecasters={m: Persistence() for m in methods},
                                      progress=False)
    plt.close("all")
    assert {s["variable"] for s in wanted} <= set(
        json.loads(res.results.attrs["config_json"])["variables"])
    _run(tmp_path, "era5-forecast", res.summary, figures=())
    report = build_report(tmp_path)
    ours = report[report.experiment == "era5-forecast"]
    paired = ours[ours.anchor.notna() & ours.value.notna()]
    assert not (ours.anchor.notna() & ours.value.isna()).any(), "an anchor shows 'not run'"
    assert len(paired) == len(mine)
    for _, a in mine.iterrows():
        row = paired[(paired.method.str.lower() == a.method.lower())
                     & (paired.metric == a.metric) & (paired.anchor == a.anchor)]
        assert len(row) == 1, a.to_dict()
        # the same method name and units on both sides, not merely equal up to case
        assert row.iloc[0].method == a.method and row.iloc[0].units == a.units
