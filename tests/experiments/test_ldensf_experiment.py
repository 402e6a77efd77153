"""kolmogorov-ldensf: its building blocks (the 10 x 10 observation grid at any
size, the multiplicative / additive noise), and the whole --quick run (slow)."""

import json

import numpy as np
import pytest
import xarray as xr

from xdyn.datasets.ldensf_data import kolmogorov_ldensf
from xdyn.experiments.ldensf import LDEnSFSetup, sparse_observations
from xdyn.observe import GridPoints
from xdyn.observe import operator_from_spec
from xdyn.systems import KolmogorovFlow


@pytest.mark.parametrize("N, per_side", [(150, 10), (64, 11), (32, 11)])
def test_observation_grid_is_every_15th_point_scaled(N, per_side):
    setup = LDEnSFSetup(N=N)
    idx = GridPoints(setup.stride).indices(KolmogorovFlow(N=N, n_forcing=4).variables)
    assert len(idx) == per_side**2
    assert len(idx) / N**2 < 0.15      # sparse: 0.44 % of the grid at the original size
    rows, cols = np.divmod(idx, N)
    assert set(np.diff(np.unique(rows))) == {setup.stride} == set(np.diff(np.unique(cols)))
    rebuilt = operator_from_spec(GridPoints(setup.stride).spec())   # from observation attrs
    assert isinstance(rebuilt, GridPoints) and rebuilt.stride == setup.stride


@pytest.fixture(scope="module")
def truth():
    return kolmogorov_ldensf(n_trajectories=2, N=16, n_saved=6, burn_in_steps=20)


@pytest.mark.parametrize("tune", ["tune_letkf", "tune_ensf"])
def test_full_space_filters_are_not_tuned_without_held_out_flows(truth, tune):
    from xdyn.experiments import ldensf

    setup = LDEnSFSetup(N=16)
    tune = getattr(ldensf, tune)
    assert tune(setup, truth.isel(trajectory=slice(0, 0)), 0, ["vorticity"]) == (setup, {})
    # nor with no tuning flows asked for (the flows are not even read)
    none = LDEnSFSetup(N=16, letkf_tuning_flows=0, ensf_tuning_flows=0)
    assert tune(none, truth, 0, ["vorticity"]) == (none, {})


def test_ensf_floor_is_the_lowest_scoring_one_on_the_held_out_flows(truth, monkeypatch):
    """Every floor's score is the field relative RMSE of that EnSF on the tuning flows
    (computed here independently), the lowest is chosen, one that fails never is."""
    import dataclasses

    from xdyn.assimilation import EnSF, _cycle
    from xdyn.experiments.ldensf import _filter_kwargs, _plain, tune_ensf

    def no_climatology(*args):
        raise ValueError("none here")

    # the lost-track monitor off (it flags a run, never changes an analysis): its
    # climatological pool of the 16 x 16 flow costs ~45 s
    monkeypatch.setattr(_cycle, "climatological_pool", no_climatology)

    # 1.5 is refused by EnSF (a floor is in [0, 1)): a configuration that fails, first
    setup = LDEnSFSetup(N=16, dt=0.04, save_every=5, n_members=5, n_pseudo_steps=10,
                        ensf_variance_floors=(1.5, 0.5, 0.0, 0.05), ensf_tuning_flows=2)
    tuned, scores = tune_ensf(setup, truth, 0, ["vorticity"])
    assert list(scores) == ["1.5", "0.5", "0", "0.05"] and scores["1.5"] == np.inf
    plain = _plain(sparse_observations(truth, setup, 4000))  # the tuning's observations
    w = truth["vorticity"].values                              # (trajectory, time, y, x)
    for b in (0.0, 0.05, 0.5):
        an = EnSF(n_pseudo_steps=10, integrator=setup.integrator, variance_floor=b,
                  **_filter_kwargs(setup, truth, 0)).fit(plain).predict(plain)
        err = an["vorticity"].transpose("trajectory", "time", "y", "x").values - w
        rel = np.sqrt((err**2).mean((2, 3)) / (w**2).mean((2, 3))).mean(0)
        np.testing.assert_allclose(scores[f"{b:g}"], rel[1:].mean(), rtol=1e-6)
    best = min(scores, key=scores.get)
    assert best != "1.5"
    assert tuned == dataclasses.replace(setup, ensf_variance_floors=(float(best),))
    assert len(set(scores.values())) == 4  # the floor changes the analysis
    # without the winner, the next lowest wins, with the same scores
    rest = tuple(b for b in setup.ensf_variance_floors if f"{b:g}" != best)
    again, rest_scores = tune_ensf(dataclasses.replace(setup, ensf_variance_floors=rest),
                                   truth, 0, ["vorticity"])
    assert rest_scores == {k: v for k, v in scores.items() if k != best}
    assert again.ensf_variance_floors == (float(min(rest_scores, key=rest_scores.get)),)
    # the state as it is and standardised are tuned together: the scaled runs are labelled
    scaled = {"vorticity": float(truth["vorticity"].std())}
    pick, both = tune_ensf(dataclasses.replace(setup, ensf_variance_floors=(0.0, 0.05)),
                           truth, 0, ["vorticity"], scales=[None, scaled])
    assert list(both) == ["0", "0.05", "0/scaled", "0.05/scaled"]
    assert both["0"] == scores["0"] and both["0/scaled"] != both["0"]
    best = min(both, key=both.get)
    assert pick.ensf_state_scale == (scaled if best.endswith("/scaled") else None)


def test_trajectories_share_their_start_and_differ_by_re(truth):
    w = truth["vorticity"]
    np.testing.assert_array_equal(w.isel(trajectory=0, time=0), w.isel(trajectory=1, time=0))
    assert float(np.abs(w.isel(trajectory=0, time=-1) - w.isel(trajectory=1, time=-1)).max()) > 0
    assert ((truth["Re"] >= 500) & (truth["Re"] <= 1500)).all()


@pytest.mark.parametrize("noise", ["multiplicative", "additive"])
def test_observation_noise_has_the_stated_size(truth, noise):
    setup = LDEnSFSetup(N=16, noise=noise, noise_level=0.1)
    obs = sparse_observations(truth, setup, 0)
    y, clean = obs["observation"].values, obs["observation_clean"].values
    rms = np.sqrt((clean**2).mean())
    if noise == "multiplicative":
        rel = (y - clean) / clean
        assert 0.08 < rel.std() < 0.12
    else:
        assert 0.08 < (y - clean).std() / rms < 0.12
    assert np.allclose(obs["noise_std"], 0.1 * rms)
    # the same seed draws the same noise
    np.testing.assert_array_equal(sparse_observations(truth, setup, 0)["observation"], y)


def test_free_forecast_parameter_error_is_measured_as_the_filters_are():
    """The free latent forecast's row holds the prior mean's error by the filters' own
    measure: on Kolmogorov the mean over trajectories of |prior - Re| / Re (it was the
    mean |prior - Re| over the mean Re, 0.43 instead of 0.5 here)."""
    from xdyn.experiments._ldensf_cases import CASES
    from xdyn.experiments.ldensf import _param_rel_error, _prior_rel_error

    case = CASES["kolmogorov"]
    assert case.per_trajectory_error
    prior = case.prior_mean["Re"]
    true = np.array([0.5, 1.0, 2.0]) * prior
    free = _prior_rel_error(prior, true, case.per_trajectory_error)
    np.testing.assert_allclose(free, np.mean(np.abs(prior - true) / true))  # 0.5
    assert not np.isclose(free, np.abs(prior - true).mean() / true.mean())
    # a filter that stayed at the prior mean through time scores the same at every step
    stayed = np.full((len(true), 4), prior)
    np.testing.assert_allclose(_param_rel_error(stayed, true, True), free)
    # the cases whose errors are over the mean magnitude keep the ratio of means
    tsunami = CASES["tsunami"]
    assert not tsunami.per_trajectory_error
    bumps = np.array([0.1, 0.3, 0.4])
    np.testing.assert_allclose(_prior_rel_error(0.25, bumps, False),
                               np.abs(0.25 - bumps).mean() / bumps.mean())


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    from xdyn.experiments import run

    return run("kolmogorov-ldensf", quick=True, out=tmp_path_factory.mktemp("ldensf"),
               progress=False).results


# measured 2026-12-04, kept states 0.2 apart (32 training flows x 600 LDNet epochs), seeds
# 0 / 1 / 2, field relative RMSE over the run: LD-EnSF 0.099 / 0.154 / 0.065, LETKF 0.098 /
# 0.147 / 0.064, EnSF 0.346 / 0.521 / 0.403, the free latent forecast 0.129 / 0.196 / 0.061;
# held-out LDNet error 0.109 / 0.161 / 0.063, the floor under LD-EnSF's field error


@pytest.mark.slow
def test_quick_run_is_faster_per_step(quick_result):
    res = quick_result
    assert np.isfinite(res.field_rel_rmse).all()
    w = res.wall_per_step
    # the latent step (encoder and decoding apart) against EnSF's whole step: measured 61-69x
    # (dynamics 152-167x) on the 2-core machine (the target, 1000x, is missed at
    # 32 x 32); the whole pipeline, decoding included, is not faster there (audit X3)
    latent = w.sel(assimilator="LD-EnSF", part=["dynamics", "analysis"]).sum()
    assert float(w.sel(assimilator="EnSF").sum() / latent) > 10
    assert float(w.sel(assimilator="LD-EnSF").sum()) >= float(latent)


@pytest.mark.slow
def test_quick_run_ldensf_beats_the_full_space_ensf(quick_result):
    mean = quick_result.mean("time").field_rel_rmse
    assert float(mean.sel(assimilator="LD-EnSF")) < 0.8 * float(mean.sel(assimilator="EnSF"))


@pytest.mark.slow
@pytest.mark.xfail(reason="missed at the quick size against the tuned LETKF (seed 0, "
                   "2026-12-06): LD-EnSF 0.099, its joint variant 0.093, LETKF 0.082 (inflation "
                   "1.05, radius 4, tuned on held-out flows; untuned 0.096). LD-EnSF cannot beat "
                   "its LDNet's error (0.114), and LETKF sees 12% of the 32 x 32 grid (0.44% at "
                   "the original's 150 x 150)", strict=False)
def test_quick_run_ldensf_beats_letkf(quick_result):
    mean = quick_result.mean("time").field_rel_rmse
    # the original's LD-EnSF, and the joint variant (which beat the untuned LETKF here)
    assert float(mean.sel(assimilator=["LD-EnSF", "LD-EnSF joint"]).max()) < float(
        mean.sel(assimilator="LETKF"))


@pytest.mark.slow
def test_quick_run_joint_ldensf_beats_letkf_under_every_harder_setting(quick_result):
    # seed 0, 2026-12-06, with the tuned LETKF: joint 0.099 / 0.098 / 0.096 / 0.093 against
    # LETKF 0.119 / 0.126 / 0.179 / 0.234 (noise 0.2, every 4 steps, stations / 4, 5 members);
    # at the main setting LETKF wins (above)
    mean = quick_result.mean("time").field_rel_rmse
    assert float(mean.sel(assimilator="LD-EnSF joint")) < float(mean.sel(assimilator="LD-EnSF"))
    r = quick_result.robust_field_rel_rmse.isel(setting=slice(1, None))
    assert (r.sel(assimilator="LD-EnSF joint") < r.sel(assimilator="LETKF")).all()
    # Re from the whole history (refine_parameters): quick run 2026-12-05, 0.018 -> 0.0055
    last = quick_result.parameter_rel_error.isel(time=-1)
    assert (last.sel(assimilator="LD-EnSF joint") < 0.5 * last.sel(assimilator="LD-EnSF")).all()


@pytest.mark.slow
def test_quick_run_ldensf_beats_the_free_latent_forecast_and_recovers_re(quick_result):
    # second half, seeds 0-2: field 0.123 / 0.227 / 0.083 against 0.204 / 0.333 / 0.090
    # (seed 2's test flows have Re near the prior mean: its error 0.069, not 0.19);
    # latent 0.009 / 0.015 / 0.010 against 0.042 / 0.064 / 0.013; Re 0.018 / 0.010 / 0.015
    late = quick_result.isel(time=slice(len(quick_result.time) // 2, None)).mean("time")
    ld, free = (late.sel(assimilator=m) for m in ("LD-EnSF", "free latent forecast"))
    assert float(ld.field_rel_rmse) < float(free.field_rel_rmse)
    assert float(ld.latent_rel_error) < float(free.latent_rel_error)
    assert (ld.parameter_rel_error < 0.5 * free.parameter_rel_error).all()


@pytest.mark.slow
def test_quick_run_ldensf_stays_accurate_where_letkf_fails(quick_result):
    # seeds 0-2: LD-EnSF within 1.17x of its main score under every setting; with 5 members
    # LETKF 0.310 / 0.442 / 0.387 against LD-EnSF 0.099 / 0.154 / 0.065
    r = quick_result.robust_field_rel_rmse
    ld = r.sel(assimilator="LD-EnSF")
    assert (ld < 1.3 * ld.isel(setting=0)).all()
    few = r.setting_axis == "n_members"
    assert (ld.where(few, drop=True) < r.sel(assimilator="LETKF").where(few, drop=True)).all()


# ---------------------------------------------------------------- the shallow-water cases

@pytest.mark.parametrize("case, N, fraction", [("tsunami", 150, 0.0045),
                                               ("shallow-water", 128, 0.0062)])
def test_full_size_observes_well_under_one_percent(case, N, fraction):
    setup = LDEnSFSetup.for_case(case)
    assert (setup.N, setup.n_train, setup.n_test) == (N, 120, 40)   # as kolmogorov-ldensf
    per_side = len(range(0, N, setup.stride))
    assert per_side == 10 and per_side**2 / N**2 < fraction
    assert setup.n_latent == {"tsunami": 10, "shallow-water": 50}[case]
    with pytest.raises(ValueError, match="unknown LD-EnSF case 'lorenz'"):
        LDEnSFSetup.for_case("lorenz")


@pytest.fixture(scope="module")
def atmosphere():
    from xdyn.datasets.ldensf_data import shallow_water_ldensf

    return shallow_water_ldensf(n_trajectories=2, N=16, n_saved=4, save_every=6,
                                burn_in_days=1.0)


def test_winds_observed_with_noise_relative_to_each_variable(atmosphere):
    from xdyn.systems import ShallowWater

    setup = LDEnSFSetup(N=16, case="shallow-water", noise="additive")
    obs = sparse_observations(atmosphere, setup, 0)
    assert set(obs["variable"].values) == {"u", "v"}
    # the recorded indices are those of the system's flat (u, v, eta) state
    op = GridPoints(setup.stride, variables=["u", "v"])
    np.testing.assert_array_equal(obs["state_index"], op.indices(ShallowWater(N=16).variables))
    for v in ("u", "v"):
        pick = obs["variable"].values == v
        clean = obs["observation_clean"].values[..., pick]
        rms = np.sqrt((clean**2).mean())
        np.testing.assert_allclose(obs["noise_std"].values[pick], 0.1 * rms)
        assert 0.07 < (obs["observation"].values[..., pick] - clean).std() / rms < 0.13


TINY = dict(N=16, n_train=4, n_test=2, n_saved=5, ldnet_epochs=3, encoder_epochs=3,
            n_points=16, hidden=8, encoder_hidden=8, n_members=5, n_pseudo_steps=10,
            localization_radius=4.0, n_calibration=2)


@pytest.mark.parametrize("case, params", [("tsunami", ["bump_x", "bump_y"]),
                                          ("shallow-water",
                                           ["forcing_amplitude", "forcing_width"])])
def test_tiny_run_has_every_method_parameter_and_figure(case, params, monkeypatch):
    import dataclasses

    import matplotlib.pyplot as plt

    from xdyn.experiments import ldensf
    from xdyn.experiments.ldensf import ldensf_experiment

    floors = []  # the EnSF floors the full-space filters run with (main, then the sweep)

    def recording(setup, *args):
        floors.append(setup.ensf_variance_floors)
        return full_space_filters(setup, *args)

    full_space_filters = ldensf.full_space_filters
    monkeypatch.setattr(ldensf, "full_space_filters", recording)

    setup = dataclasses.replace(LDEnSFSetup.for_case(case, quick=True), **TINY)
    setup.robustness_settings = {"noise_level": (0.05, 0.2), "obs_interval": (2,),
                                 "stride_factor": (2,), "n_members": (5, 3)}
    setup.robustness_full_space = case == "tsunami"  # the quick shallow water's: False
    if case == "shallow-water":
        setup.data_options = {"burn_in_days": 0.2}
    result = ldensf_experiment(setup, seed=0)
    res = result.results
    assert list(res["parameter"].values) == params
    assert list(res["variable"].values) == ["u", "v", "eta"]
    ours = ["LD-EnSF", "LD-EnSF joint", "free latent forecast"]
    assert np.isfinite(res.field_rel_rmse.sel(assimilator=ours).isel(time=slice(1, None))).all()
    assert np.isfinite(res.parameter_rel_error.sel(assimilator=["LD-EnSF", "LD-EnSF joint"])
                       ).all()
    assert (res.parameter_rel_spread > 0).all()
    assert list(res["quantity"].values) == ["fields", "latent state"] + params
    ratio = res.spread_skill
    assert (ratio.sel(assimilator=["LD-EnSF", "LD-EnSF joint"]) > 0).all()
    assert ratio.sel(assimilator=["EnSF", "LETKF", "free latent forecast"]).isnull().all()
    assert "spread-skill ratio" in result.table
    # the reported spreads carry factors fitted on the held-out trajectories
    scale = res.spread_scale
    assert (scale.sel(assimilator=["LD-EnSF", "LD-EnSF joint"]) > 0).all()
    assert scale.sel(assimilator=["EnSF", "LETKF", "free latent forecast"]).isnull().all()
    assert "calibrate them on 2 held-out trajectories" in result.table
    # the LETKF runs with the inflation and radius of the lowest score on the held-out flows
    # (the quick tsunami's; the quick shallow water's is not tuned: letkf_tuning_flows=0)
    tuning = json.loads(res.attrs["letkf_tuning"])
    if case == "tsunami":
        assert len(tuning) == len(setup.letkf_inflations) * len(setup.letkf_radius_scales)
        best = min(tuning, key=tuning.get)
        assert best == (f"{res.attrs['letkf_inflation']:g}/"
                        f"{res.attrs['letkf_localization_radius']:g}")
        assert "(tuned on held-out flows)" in result.table
    else:
        assert tuning == {} and "(not tuned)" in result.table
        assert (res.attrs["letkf_inflation"], res.attrs["letkf_localization_radius"]) == \
            (setup.letkf_inflations[0], setup.localization_radius)
    # the EnSF with the floor of the lowest score (both quick cases tune it on one flow),
    # in the main comparison and in every setting of the sweep (the tsunami's reruns it)
    # (and on the state as it is and standardised: "/scaled")
    tuning = json.loads(res.attrs["ensf_tuning"])
    tried = [f"{b:g}" for b in setup.ensf_variance_floors]
    assert sorted(tuning) == sorted(tried + [f"{b}/scaled" for b in tried])
    best = min(tuning, key=tuning.get)
    assert float(best.split("/")[0]) == res.attrs["ensf_variance_floor"]
    assert (json.loads(res.attrs["ensf_state_scale"]) != {}) == best.endswith("/scaled")
    assert floors == [(res.attrs["ensf_variance_floor"],)] * (6 if case == "tsunami" else 1)
    # the prior mean's error: |prior mean - truth| over the mean true value
    true = res.parameter_true.values
    prior = {"bump_x": 0.25, "bump_y": 0.25, "forcing_amplitude": 150.5, "forcing_width": 2.5}
    expect = [np.abs(prior[p] - true[j]).mean() / np.abs(true[j]).mean()
              for j, p in enumerate(params)]
    np.testing.assert_allclose(res.parameter_rel_error.sel(
        assimilator="free latent forecast").isel(time=0), expect)
    for v in res.data_vars.values():
        assert "units" in v.attrs and "long_name" in v.attrs
    metrics = {r["metric"] for r in result.summary}
    assert {f"{p} relative error (last step)" for p in params} <= metrics
    assert set(result.figures) == {"fields", "error_through_time", "parameter_recovery",
                                   "robustness"}
    assert len(result.figures["parameter_recovery"].axes) == 2
    # the robustness sweep: one row per setting (5 members is TINY's own: not repeated)
    r = res.robust_field_rel_rmse
    assert list(r.setting_axis.values) == ["default", "noise_level", "noise_level",
                                           "obs_interval", "stride_factor", "n_members"]
    assert np.isfinite(r.sel(assimilator=ours)).all()
    full = r.sel(assimilator=["EnSF", "LETKF"]).isel(setting=slice(1, None))
    assert bool(full.isnull().all()) == (case == "shallow-water")
    np.testing.assert_allclose(r.isel(setting=0), res.field_rel_rmse.isel(
        time=slice(1, None)).mean("time"))
    assert np.isfinite(res.robust_parameter_rel_error).all()
    assert {f"field relative RMSE, robustness: {s}" for s in r.setting.values} <= metrics
    assert len(result.figures["robustness"].axes) == 4
    assert "robustness" in result.table
    plt.close("all")


@pytest.fixture
def tiny_tsunami(monkeypatch):
    """A tiny tsunami test set and its observations; forecasts recorded (and slowed) per call."""
    import dataclasses
    import time

    from xdyn.assimilation import _cycle
    from xdyn.experiments._ldensf_cases import CASES
    from xdyn.systems import ShallowWater

    def no_climatology(*args):
        raise ValueError("none here")

    # the lost-track monitor off: its pool of the 16 x 16 flow is costly and flags only
    monkeypatch.setattr(_cycle, "climatological_pool", no_climatology)
    calls = []  # (start, seconds) of every ShallowWater.forecast
    forecast = ShallowWater.forecast

    def recorded(self, x, dt, n_steps):
        tic = time.perf_counter()
        time.sleep(0.05)  # a forecast the clock can tell from the analysis
        out = forecast(self, x, dt, n_steps)
        calls.append((tic, time.perf_counter() - tic))
        return out

    setup = dataclasses.replace(LDEnSFSetup.for_case("tsunami", quick=True),
                                **{**TINY, "n_train": 0, "n_calibration": 0})
    test = CASES["tsunami"].make_data(setup, 0)
    monkeypatch.setattr(ShallowWater, "forecast", recorded)
    return setup, test, sparse_observations(test, setup, 0), calls


def _timed_predicts(monkeypatch):
    """(start, seconds, n_times) of every EnSF / LETKF predict from now on."""
    import time

    from xdyn.assimilation import LETKF, EnSF

    runs = []
    for cls in (EnSF, LETKF):
        def timed(self, obs, predict=cls.predict, **kwargs):
            tic = time.perf_counter()
            out = predict(self, obs, **kwargs)
            runs.append((type(self).__name__, tic, time.perf_counter() - tic, obs.sizes["time"]))
            return out

        monkeypatch.setattr(cls, "predict", timed)
    return runs


def test_full_space_wall_time_is_split_within_the_filters_own_run(tiny_tsunami, monkeypatch):
    """Dynamics per step: the seconds of the forecasts the filter's own run made over its
    steps; analysis: the rest of that run. A forecast timed apart charged one interval to
    every step (the first analysis has none) and its noise alone left the EnSF no analysis
    time (max(total - dynamics, 0) = 0 on the quick tsunami and shallow water)."""
    from xdyn.experiments.ldensf import full_space_filters

    setup, test, obs, calls = tiny_tsunami
    runs = _timed_predicts(monkeypatch)
    analyses, walls = full_space_filters(setup, test, obs, 0, ["u", "v", "eta"])
    n = obs.sizes["time"]
    for name in ("EnSF", "LETKF"):
        assert all(np.isfinite(analyses[name][v]).all() for v in ("u", "v", "eta"))
        _, tic, wall, _ = [r for r in runs if r[0] == name and r[3] == n][-1]
        during = [s for t, s in calls if tic <= t <= tic + wall]
        assert len(during) == n - 1  # no forecast to the first analysis
        dyn, ana, coding = walls[name]
        assert dyn > 0 and ana > 0 and coding == 0  # no encoder, no decoding
        np.testing.assert_allclose(dyn, sum(during) / n, rtol=0.02)
        # the whole run, up to the selection of the fields and the timers' own cost
        np.testing.assert_allclose(dyn + ana, wall / n, rtol=0.02, atol=2e-3)


def test_failed_full_space_filter_has_no_analysis_time(tiny_tsunami, monkeypatch):
    """A filter that raised has no time per step; one that went non-finite stopped its
    cycle: its forecasts' rate over a whole run, and no analysis time."""
    from xdyn.assimilation import LETKF, EnSF
    from xdyn.experiments.ldensf import full_space_filters

    setup, test, obs, calls = tiny_tsunami
    analyze = EnSF._analyze

    def lost_at_the_third(self, E, k, ctx, rng):
        E = analyze(self, E, k, ctx, rng)
        return E * np.nan if k >= 2 and ctx.n_steps.size == obs.sizes["time"] else E

    def broken(*args):
        raise RuntimeError("broken")

    monkeypatch.setattr(EnSF, "_analyze", lost_at_the_third)
    monkeypatch.setattr(LETKF, "_analyze", broken)
    analyses, walls = full_space_filters(setup, test, obs, 0, ["u", "v", "eta"])
    # (their third part, encoding and decoding, is 0: they have none)
    assert np.isnan(walls["LETKF"][:2]).all() and analyses["LETKF"]["eta"].isnull().all()
    dyn, ana, _ = walls["EnSF"]
    assert np.isnan(ana) and dyn > 0.05 * (obs.sizes["time"] - 1) / obs.sizes["time"]


def test_spread_skill_is_the_rms_spread_over_the_rms_error_as_the_metric_defines_it():
    from xdyn.experiments.ldensf import METHODS, spread_skill
    from xdyn.metrics import spread_skill_ratio

    rng = np.random.RandomState(0)
    t = np.arange(3.0)
    truth = xr.Dataset({"w": (("trajectory", "time", "y", "x"), rng.randn(2, 3, 4, 4)),
                        "Re": ("trajectory", [500.0, 900.0])}, coords={"time": t})
    latent_ref = rng.randn(2, 3, 5)
    # errors of RMS 0.2 (fields), 0.5 (latent), 40 (Re); spreads 0.1, 1.0, 20
    out = xr.Dataset({"w": truth["w"] + 0.2, "w_spread": truth["w"] * 0 + 0.1,
                      "latent_state": (("trajectory", "time", "latent"), latent_ref - 0.5),
                      "latent_spread": (("trajectory", "time", "latent"), np.ones((2, 3, 5))),
                      "Re": (("trajectory", "time"), np.array([[540.0] * 3, [860.0] * 3])),
                      "Re_spread": (("trajectory", "time"), np.full((2, 3), 20.0))},
                     coords={"time": t})
    ratio = spread_skill({"LD-EnSF": out}, truth, latent_ref, ["Re"], ["w"], n_members=20)
    # with the finite-ensemble factor of xdyn.metrics.spread_skill_ratio, sqrt(21 / 20)
    np.testing.assert_allclose(ratio.sel(assimilator="LD-EnSF"),
                               np.array([0.5, 2.0, 0.5]) * np.sqrt(21 / 20))
    assert ratio.drop_sel(assimilator="LD-EnSF").isnull().all()
    assert list(ratio["assimilator"].values) == list(METHODS)
    # from members summarised as LD-EnSF does (mean, std with ddof=1): the metric's value
    members = xr.DataArray(latent_ref[..., None] + rng.randn(2, 3, 5, 20),
                           dims=("trajectory", "time", "latent", "member"))
    out["latent_state"] = members.mean("member")
    out["latent_spread"] = members.std("member", ddof=1)
    ratio = spread_skill({"LD-EnSF": out}, truth, latent_ref, ["Re"], ["w"], n_members=20)
    truth_latent = xr.DataArray(latent_ref, dims=("trajectory", "time", "latent"))
    np.testing.assert_allclose(float(ratio.sel(assimilator="LD-EnSF", quantity="latent state")),
                               float(spread_skill_ratio(members, truth_latent)))


def test_field_error_is_nan_where_any_flow_diverged_and_skips_fields_at_rest():
    from xdyn.experiments.ldensf import field_rel_rmse

    rng = np.random.default_rng(0)
    dims = ("trajectory", "time", "y", "x")
    truth = xr.Dataset({"u": (dims, rng.normal(size=(3, 4, 5, 5))),
                        "v": (dims, rng.normal(size=(3, 4, 5, 5)))},
                       coords={"time": np.arange(4.0)})
    truth["v"][:, 0] = 0.0  # at rest at the first time: no relative error there
    analysis = truth + 0.1
    rel = field_rel_rmse({"A": analysis}, truth, ["u", "v"], ["A"]).isel(assimilator=0)
    assert rel.dims == ("variable", "time")
    assert np.isnan(rel.values[1, 0]) and np.isfinite(rel.values[:, 1:]).all()
    analysis["u"][1, 2:] = np.nan  # one flow's filter diverged at the third time
    rel = field_rel_rmse({"A": analysis}, truth, ["u", "v"], ["A"]).isel(assimilator=0)
    assert np.isnan(rel.values[0]).tolist() == [False, False, True, True]
    assert np.isfinite(rel.values[1, 1:]).all()


def test_sparse_observations_at_an_interval_and_a_wider_stride():
    truth = kolmogorov_ldensf(n_trajectories=1, N=16, n_saved=6, burn_in_steps=2)
    base = LDEnSFSetup(N=16)
    obs = sparse_observations(truth, base, 0)
    wide = sparse_observations(truth, LDEnSFSetup(N=16, stride_factor=2, obs_interval=2), 0)
    assert (base.stride, LDEnSFSetup(N=16, stride_factor=2).stride) == (2, 4)
    assert obs.sizes["obs"] == 4 * wide.sizes["obs"] == 64
    np.testing.assert_array_equal(wide["time"], truth["time"][::2])
    assert wide.attrs["obs_interval"] == 2


@pytest.fixture(scope="module")
def tsunami_quick(tmp_path_factory):
    from xdyn.experiments import run

    return run("tsunami-ldensf", quick=True, out=tmp_path_factory.mktemp("tsunami"),
               progress=False).results


@pytest.fixture(scope="module")
def atmosphere_quick(tmp_path_factory):
    from xdyn.experiments import run

    return run("shallow-water-ldensf", quick=True, out=tmp_path_factory.mktemp("atmosphere"),
               progress=False).results


def _late(res):
    """Mean over the second half of the run (after the encoder has seen enough history)."""
    return res.isel(time=slice(len(res.time) // 2, None)).mean("time")


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tsunami_quick", "atmosphere_quick"])
def test_quick_ldensf_beats_the_free_latent_forecast_and_recovers_parameters(which, request):
    res = request.getfixturevalue(which)
    late = _late(res)
    ld, free = (late.sel(assimilator=m) for m in ("LD-EnSF", "free latent forecast"))
    assert np.isfinite(res.field_rel_rmse.sel(assimilator="LD-EnSF").isel(time=slice(1, None))
                       ).all()
    assert float(ld.field_rel_rmse) < 0.8 * float(free.field_rel_rmse)
    assert float(ld.latent_rel_error) < float(free.latent_rel_error)
    # every parameter closer than the prior mean is
    assert (ld.parameter_rel_error < 0.8 * free.parameter_rel_error).all()
    assert (res.parameter_rel_spread.isel(time=-1) > 0).all()
    # the latent step against the full model's ensemble forecast (EnSF's own analysis time
    # is NaN where it went non-finite)
    dyn = res.wall_per_step.sel(part="dynamics")
    assert float(dyn.sel(assimilator="EnSF") / dyn.sel(assimilator="LD-EnSF")) > 20


@pytest.mark.slow
def test_quick_atmosphere_beats_the_full_space_filters_and_reaches_the_surrogate_error(
        atmosphere_quick):
    # measured 2026-12-02: LD-EnSF 0.091, EnSF 0.372, LETKF 0.399 field relative RMSE (the
    # full-space model runs at the prior-mean forcing); held-out LDNet error 0.027
    mean = atmosphere_quick.isel(time=slice(1, None)).mean("time").field_rel_rmse
    assert float(mean.sel(assimilator="LD-EnSF")) < float(
        mean.sel(assimilator=["EnSF", "LETKF"]).min())
    assert float(atmosphere_quick.ldnet_test_rel_rmse) < 0.066     # the original's 0.066


@pytest.mark.slow
def test_quick_tsunami_beats_the_full_space_filters(tsunami_quick):
    # measured 2026-12-04 with the semi-implicit sampler: LD-EnSF 0.17 (2026-12-03: 0.16, and
    # 0.21 with the LDNet trained in batches of two), LETKF 0.33 field relative RMSE; EnSF
    # finite but lost (3.7; with the explicit step it went non-finite). 2026-12-06 with the
    # LETKF tuned on a held-out flow (inflation 1.2, radius 4): LD-EnSF 0.182, joint 0.078,
    # LETKF 0.217 (untuned 0.334), EnSF 3.685
    mean = tsunami_quick.isel(time=slice(1, None)).mean("time").field_rel_rmse
    assert np.isfinite(float(mean.sel(assimilator="EnSF")))
    assert float(mean.sel(assimilator="LD-EnSF")) < float(
        mean.sel(assimilator=["EnSF", "LETKF"]).min())
    assert float(mean.sel(assimilator="LD-EnSF joint")) < 0.5 * float(
        mean.sel(assimilator=["EnSF", "LETKF"]).min())


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tsunami_quick", "atmosphere_quick"])
def test_quick_joint_ldensf_is_not_limited_by_the_encoder(which, request):
    # measured 2026-12-05: LD-EnSF joint 0.063 (tsunami) / 0.043 (shallow water) against
    # LD-EnSF's 0.174 / 0.128 and the LDNet's own 0.046 / 0.027; under the sweep 0.053-0.090
    # / 0.038-0.063
    res = request.getfixturevalue(which)
    mean = res.mean("time").field_rel_rmse
    joint = float(mean.sel(assimilator="LD-EnSF joint"))
    assert joint < 0.6 * float(mean.sel(assimilator="LD-EnSF"))
    assert joint < 2.0 * float(res.ldnet_test_rel_rmse)
    r = res.robust_field_rel_rmse.sel(assimilator="LD-EnSF joint")
    assert (r < 1.6 * r.isel(setting=0)).all()
    # the parameters from the whole history (refine_parameters, the parameters' own prior):
    # quick runs 2026-12-05, tsunami 0.048 / 0.048 -> 0.0024 / 0.0026, shallow water 0.172 /
    # 0.052 -> 0.0087 / 0.0060
    last = res.parameter_rel_error.isel(time=-1)
    assert (last.sel(assimilator="LD-EnSF joint") < 0.3 * last.sel(assimilator="LD-EnSF")).all()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["tsunami_quick", "atmosphere_quick"])
def test_quick_ldensf_stays_accurate_where_the_observations_degrade(which, request):
    # measured 2026-12-03 on the tsunami (all settings): LD-EnSF 0.157-0.224 (as the main
    # comparison 0.162), LETKF 0.33-0.93 (5 members 0.93, a quarter of the stations 0.46),
    # EnSF lost (2.3-7.3); the shallow water (LD-EnSF alone in the quick sweep): 0.058-0.118
    # (main 0.093; with the full-space filters they scored 0.37-0.42). Since 2026-12-06 the
    # quick tsunami's sweep scores LD-EnSF alone too (its full-space rows took the quick run
    # past 10 minutes); the tiny run above checks those rows
    r = request.getfixturevalue(which).robust_field_rel_rmse
    ld = r.sel(assimilator="LD-EnSF")
    assert set(r.setting_axis.values) == {"default", "noise_level", "obs_interval",
                                          "stride_factor", "n_members"}
    assert (ld < 1.6 * ld.isel(setting=0)).all()
    full = r.sel(assimilator=["EnSF", "LETKF"]).isel(setting=slice(1, None))
    assert full.isnull().all()  # robustness_full_space=False at the quick size


@pytest.mark.slow
@pytest.mark.parametrize("which, original", [
    pytest.param("quick_result", 0.012, id="kolmogorov", marks=pytest.mark.xfail(
        reason="missed at the quick size (measured 2026-12-04): held-out LDNet error 0.109 / "
               "0.161 / 0.063 (seeds 0-2) on 32 x 32 after 32 flows x 600 epochs (2026-12-06, "
               "in the 10-minute budget: 0.118 at seed 0), against the original's 0.012 on "
               "150 x 150 with 120 flows", strict=False)),
    pytest.param("tsunami_quick", 0.017, id="tsunami", marks=pytest.mark.xfail(
        reason="missed at the quick size (measured 2026-12-04): held-out LDNet error 0.046 on "
               "32 x 32 after 64 trajectories x 200 epochs in batches of 1 (0.035 after 400; "
               "2026-12-03: 0.072 in batches of 2, 0.152 in batches of 8; 2026-12-06, in the "
               "10-minute budget: 0.057 after 160), the original 0.017 on 150 x 150 with 120 "
               "trajectories", strict=False))])
def test_quick_ldnet_reaches_the_originals_surrogate_error(which, original, request):
    # the shallow-water case's (0.066) is met and asserted with its filters above
    assert float(request.getfixturevalue(which).ldnet_test_rel_rmse) < original
