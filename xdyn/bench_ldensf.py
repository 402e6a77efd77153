"""``xdyn bench ldensf``: time per assimilation step of LD-EnSF against full-space EnSF.

One assimilation step is the forecast over one observation interval and the
analysis at its end. LD-EnSF forecasts its latent state with the LDNet's
latent ODE and analyses it with the EnSF sampler; the full-space EnSF
forecasts every member with the system on the whole grid and analyses the
sparse point observations there. Both run the same sampler (the kernel score,
the damped guidance, the case's integrator, ``n_pseudo_steps``), in closed
form for their linear observation operators (:func:`~xdyn.assimilation._score.ensf_analysis`),
with the same number of members and trajectories, on the case's grid.

The cost of a step does not depend on what the networks learned, so the
LDNet and the encoder are trained for one epoch on two trajectories: the
benchmark runs at the original's full sizes (150 x 150, 128 x 128, latent
9 + 1, 10 + 2, 50 + 2) in minutes. Decoding the analysis members back onto
the grid is reported apart: LD-EnSF needs it only when a field is wanted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

import numpy as np
import torch

__all__ = ["bench_ldensf", "ldensf_step_times"]

CASES = ("kolmogorov", "tsunami", "shallow-water")


def ldensf_step_times(setup, n_trajectories=1, n_steps=3, seed=0):
    """Seconds per assimilation step of LD-EnSF and of full-space EnSF on ``setup``.

    Parameters
    ----------
    setup : xdyn.experiments.ldensf.LDEnSFSetup
        The case and its sizes (grid, latent size, members, pseudo-steps).
    n_trajectories : int, default=1
        Trajectories assimilated at once by both filters.
    n_steps : int, default=3
        Timed steps of each filter, the analyses at the same observation times
        (the 2nd to the ``n_steps + 1``-th after the start), after one untimed
        step (LD-EnSF: its analyses at the start and at the first time, after an
        untimed two-time ``predict``); the medians are reported, except for
        ``decode`` and ``joint_analysis``, means over every step of one ``predict``.
    seed : int, default=0

    Returns
    -------
    dict
        ``latent_dynamics``, ``latent_analysis``, ``decode`` (LD-EnSF),
        ``joint_analysis`` (the analysis of :func:`~xdyn.experiments.ldensf.joint_variant`:
        ``likelihood="joint"`` and ``refine_parameters``, whose cost grows with the
        observations so far: timed over the few steps of this benchmark) and
        ``full_dynamics``, ``full_analysis`` (EnSF), in seconds per step, and
        ``n_state``, ``n_obs`` and ``n_latent`` (latent + parameters, as text).
        LD-EnSF's ``latent_dynamics`` is its latent ODE's step, ``latent_analysis``
        the time from the end of that step to the start of the next one.

    Raises
    ------
    ValueError
        If ``setup.obs_interval`` is not 1: both sides time one kept step of the
        model per analysis.

    Examples
    --------
    >>> from xdyn.experiments.ldensf import LDEnSFSetup
    >>> setup = LDEnSFSetup.for_case("tsunami", quick=True)
    >>> setup = dataclasses.replace(setup, N=16, n_latent=4, hidden=16, n_points=32)
    >>> t = ldensf_step_times(setup, n_steps=1)
    >>> t["n_state"], t["n_obs"], t["n_latent"]
    (768, 64, '4+2')
    >>> all(t[k] > 0 for k in ("latent_dynamics", "latent_analysis", "full_dynamics"))
    True
    """
    from xdyn.assimilation import LDEnSF, ObservationEncoder
    from xdyn.assimilation._score import ensf_analysis
    from xdyn.experiments._ldensf_cases import CASES as SPECS
    from xdyn.experiments._ldensf_cases import _state_order
    from xdyn.experiments.ldensf import joint_variant, make_ldnet, sparse_observations
    from xdyn.observe import GridPoints

    if int(setup.obs_interval) != 1:
        # the full-space side forecasts one kept step per analysis, and LD-EnSF's
        # observations would be every obs_interval-th of them
        raise ValueError("ldensf_step_times times one kept step per analysis: "
                         f"setup.obs_interval must be 1, got {setup.obs_interval}")
    case = SPECS[setup.case]
    # times 0 .. n_steps + 2: the last only ends LD-EnSF's last timed analysis (see below)
    setup = dataclasses.replace(setup, n_train=2, n_test=int(n_trajectories),
                                n_saved=int(n_steps) + 3, n_calibration=0)
    data = case.make_data(setup, seed)
    train, test = data.isel(trajectory=slice(0, 2)), data.isel(trajectory=slice(2, None))
    obs_train = sparse_observations(train, setup, seed + 1)
    obs_test = sparse_observations(test, setup, seed + 2)
    one = dict(max_epochs=1, device="cpu", random_state=seed, progress=False)
    ldnet = make_ldnet(setup, case.parameters, batch_size=1, **one).fit(train)
    filt = LDEnSF(ldnet, ObservationEncoder(hidden_size=setup.encoder_hidden, **one),
                  n_members=setup.n_members, n_pseudo_steps=setup.n_pseudo_steps,
                  integrator=setup.integrator, prefit_ldnet=True, random_state=seed)
    filt.fit(obs_train, train)
    filt.predict(obs_test.isel(time=slice(0, 2)))  # torch's one-off set-up
    n_times = obs_test.sizes["time"]
    with _latent_step_calls(filt.ldnet_.module_) as calls:
        t0 = time.perf_counter()
        filt.predict(obs_test)
        per_step = (time.perf_counter() - t0) / n_times
    if len(calls) != n_times:  # one latent step per observation time is what is timed
        raise RuntimeError(f"LD-EnSF took {len(calls)} latent steps for {n_times} times")
    # analysis k runs from the end of latent step k to the start of step k + 1; the full
    # side below times the same analyses (times 2 .. n_steps + 1)
    timed = range(2, int(n_steps) + 2)
    lat_dyn = float(np.median([calls[k][1] - calls[k][0] for k in timed]))
    lat_ana = float(np.median([calls[k + 1][0] - calls[k][1] for k in timed]))
    decode = per_step - filt.timing_["dynamics"] - filt.timing_["analysis"]  # means
    joint = joint_variant(filt)  # the same fitted nets, as the experiments' "LD-EnSF joint"
    joint.predict(obs_test.isel(time=slice(0, n_times - 1)))
    joint_ana = joint.timing_["analysis"]

    # full space: every member on the grid, the stations picked from the flat state
    system = case.system(setup)
    fields = _state_order(test)  # the system's flat-state order
    idx = torch.as_tensor(GridPoints(setup.stride, variables=list(case.observed)).indices(
        system.variables))
    M, n = int(setup.n_members), int(n_trajectories)
    start = np.concatenate([test[v].isel(time=0).values.reshape(n, -1) for v in fields], -1)
    rng = np.random.RandomState(seed)
    E = np.repeat(start[:, None], M, 1)
    E = system.as_tensor(E + 0.01 * float(np.abs(start).mean()) * rng.standard_normal(E.shape))
    y = torch.as_tensor(obs_test["observation"].values, dtype=E.dtype)     # (n, T, p)
    noise = torch.as_tensor(obs_test["noise_std"].values, dtype=E.dtype)
    gen = torch.Generator().manual_seed(seed)
    dyn, ana = [], []
    for k in range(int(n_steps) + 1):
        t0 = time.perf_counter()
        E = system.forecast(E.reshape(n * M, -1), setup.dt, setup.save_every).reshape(n, M, -1)
        t1 = time.perf_counter()
        E = ensf_analysis(E, y[:, k + 1], lambda x: x.index_select(-1, idx), noise,
                          n_pseudo_steps=setup.n_pseudo_steps, integrator=setup.integrator,
                          generator=gen, linear=True)
        t2 = time.perf_counter()
        if k:  # the first step warms the solver's caches
            dyn.append(t1 - t0)
            ana.append(t2 - t1)
    return {"latent_dynamics": lat_dyn, "latent_analysis": lat_ana, "joint_analysis": joint_ana,
            "decode": max(decode, 0.0),
            "full_dynamics": float(np.median(dyn)), "full_analysis": float(np.median(ana)),
            "n_state": int(E.shape[-1]), "n_obs": int(idx.numel()),
            "n_latent": f"{setup.n_latent}+{len(case.parameters)}"}


@contextlib.contextmanager
def _latent_step_calls(module):
    """Record ``(start, end)`` of every ``module.step`` call (LD-EnSF's latent forecast)
    inside; the method is the class's again on leaving."""
    calls, step = [], module.step

    def timed_step(*args, **kwargs):
        t0 = time.perf_counter()
        out = step(*args, **kwargs)
        calls.append((t0, time.perf_counter()))
        return out

    module.step = timed_step
    try:
        yield calls
    finally:
        del module.step


def bench_ldensf(quick: bool = False, cases=CASES, n_trajectories: int = 1) -> str:
    """Per-step speed-up of LD-EnSF over full-space EnSF on each case's grid (target 10^3).

    ``quick``: the experiments' CPU sizes (32 x 32); otherwise the original's
    sizes. Prints a table with the dynamics and analysis split, the decoding
    cost, and the peak memory.

    Parameters
    ----------
    quick : bool, default False
        The experiments' CPU-sized setups instead of the original's sizes.
    cases : sequence of str, default=CASES
        LD-EnSF cases to time (``"kolmogorov"``, ``"tsunami"``, ``"shallow-water"``).
    n_trajectories : int, default=1
        Trajectories assimilated at once by both filters (see :func:`ldensf_step_times`).

    Returns
    -------
    str
        The table, the worst speed-up against the 10^3 target and notes.

    Examples
    --------
    A benchmark, not a test: minutes at the full sizes (shown, not run):

    >>> print(bench_ldensf(quick=True))  # doctest: +SKIP
    """
    from xdyn.bench import _load_line, _peak_line
    from xdyn.experiments.catalogue import reset_peak_memory
    from xdyn.experiments.ldensf import LDEnSFSetup

    reset = reset_peak_memory()
    size = "CPU (quick) sizes" if quick else "the original's sizes"
    lines = [f"LD-EnSF vs full-space EnSF, seconds per assimilation step, {size}, "
             f"{n_trajectories} trajectory(ies), CPU",
             f"{'case':<15}{'grid':>9}{'state':>8}{'obs':>6}{'latent':>8}"
             f"{'LD dyn':>10}{'LD ana':>10}{'decode':>9}{'EnSF dyn':>10}{'EnSF ana':>10}"
             f"{'speed-up':>10}{'dyn x':>9}{'joint ana':>11}{'joint x':>9}"]
    ratios = {}
    for name in cases:
        setup = LDEnSFSetup.for_case(name, quick=quick)
        t = ldensf_step_times(setup, n_trajectories=n_trajectories)
        latent = t["latent_dynamics"] + t["latent_analysis"]
        full = t["full_dynamics"] + t["full_analysis"]
        ratios[name] = full / latent
        joint = t["latent_dynamics"] + t["joint_analysis"]
        lines.append(
            f"{name:<15}{f'{setup.N}^2':>9}{t['n_state']:>8,d}{t['n_obs']:>6d}"
            f"{t['n_latent']:>8}{t['latent_dynamics']:>10.2e}{t['latent_analysis']:>10.2e}"
            f"{t['decode']:>9.2f}{t['full_dynamics']:>10.3f}{t['full_analysis']:>10.3f}"
            f"{ratios[name]:>10,.0f}{t['full_dynamics'] / t['latent_dynamics']:>9,.0f}"
            f"{t['joint_analysis']:>11.2e}{full / joint:>9,.0f}")
    worst = min(ratios.values())
    lines += [f"speed-up per step (forecast + analysis, decoding apart): {worst:,.0f}x at the "
              f"least; target >= 1000x: {'met' if worst >= 1000 else 'missed'}",
              "dyn, ana: medians over the same observation times on both sides; both "
              "filters: the EnSF sampler in closed form (kernel score, damped guidance, "
              "linear operator); LDNet and encoder trained one epoch (the cost does not depend "
              "on the weights); 'decode' is LD-EnSF's decoding of its members onto the grid; "
              "'joint': the experiments' 'LD-EnSF joint' (likelihood='joint': the stations "
              "through the decoder too; refine_parameters: its cost grows with the "
              "observations so far: timed here over the first few steps)",
              _peak_line(reset), _load_line()]
    return "\n".join(lines)
