"""VGB-DM: physics models, parameter recovery, flow matching, grey-box gain, contract."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from xdyn.forecast import NeuralODE, VGBDM
from xdyn.forecast.physics import (FitzHughNagumoPhysics, FunctionPhysics, Lorenz63Physics,
                                   PendulumPhysics, RLCPhysics, as_physics)
from xdyn.systems import DampedPendulum, Lorenz63, ReactionDiffusion, RLCCircuit


def _pendulum(n, seed, omega0=(1.7, 1.7), damping=(0.0, 0.0), t_span=3.0, dt=0.1):
    return DampedPendulum().simulate(n_trajectories=n, t_span=t_span, dt=dt / 5, save_every=5,
                                     random_state=seed,
                                     parameter_ranges={"omega0": omega0, "damping": damping})


def test_physics_models_are_the_systems_minus_their_missing_term():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(5, 2)))
    pend = DampedPendulum(omega0=1.3, damping=0.4)
    full = PendulumPhysics().rhs(0, x, torch.full((5, 1), 1.3, dtype=torch.float64))
    full[:, 1] -= 0.4 * x[:, 1]
    torch.testing.assert_close(full, pend.rhs(0, x))
    rlc = RLCCircuit(R=0.7, L=2.0, C=0.6)
    full = RLCPhysics().rhs(0, x, torch.full((5, 1), 1.2, dtype=torch.float64))
    full[:, 1] -= 0.7 * x[:, 1] / 2.0
    torch.testing.assert_close(full, rlc.rhs(0, x))
    x3 = torch.as_tensor(rng.normal(size=(5, 3)) * 5)
    full = Lorenz63Physics().rhs(0, x3, torch.tensor([[10.0, 8 / 3]], dtype=torch.float64))
    full[:, 1] += x3[:, 0] * (28.0 - x3[:, 2])
    torch.testing.assert_close(full, Lorenz63().rhs(0, x3))


def test_fitzhugh_nagumo_diffusion_is_the_system_without_reaction():
    rd = ReactionDiffusion(N=16, L=2.0, Du=2e-3, Dv=6e-3)
    x = rd.as_tensor(rd.random_initial_state(2, 0))
    phys = FitzHughNagumoPhysics(N=16, L=2.0).rhs(0, x, torch.tensor([[2e-3, 6e-3]],
                                                                     dtype=torch.float64))
    fields = x.reshape(2, 2, 16, 16)
    reaction = rd._reaction(fields).reshape(2, -1)
    torch.testing.assert_close(phys + reaction, rd.rhs(0, x), atol=1e-10, rtol=1e-8)


def test_physics_only_recovers_the_parameter_of_data_made_by_the_same_physics():
    train, test = _pendulum(48, 0), _pendulum(8, 1)
    model = VGBDM("pendulum", correction=False, z_dim=0, len_episode=10, encoder="mlp",
                  encoder_hidden=16, beta_p=1e-3, batch_size=16, max_epochs=40, lr=1e-2,
                  random_state=0).fit(train)
    omega0 = model.infer_parameters(test.isel(time=slice(0, 10))).omega0.values
    np.testing.assert_allclose(omega0, 1.7, rtol=0.03)  # the prior mean is 2.0
    fm = model.net_.history[:, "fm_loss"]
    assert fm[-1] < 0.2 * fm[0]  # the flow-matching loss falls


def test_vgbdm_beats_the_incomplete_physics_on_damped_pendulums():
    kw = dict(omega0=(1.2, 1.8), damping=(0.5, 1.0), t_span=4.0)
    train, test = _pendulum(48, 0, **kw), _pendulum(8, 1, **kw)
    E, common = 10, dict(len_episode=10, encoder="mlp", encoder_hidden=16, hidden=32,
                         batch_size=16, max_epochs=40, lr=1e-2, beta_p=1e-3,
                         random_state=0)
    leads = np.round(test.time.values[E:] - test.time.values[E - 1], 10)
    truth = test.theta.values[:, E:]
    errors = {}
    for name, model in {"physics": VGBDM("pendulum", correction=False, z_dim=0, **common),
                        "vgbdm": VGBDM("pendulum", z_dim=2, n_members=4, **common)}.items():
        fc = model.fit(train).predict(test.isel(time=slice(0, E)), leads)
        mean = fc.theta.isel(time=-1).mean("member").values
        errors[name] = np.sqrt(np.mean((mean - truth) ** 2))
    # the frictionless model keeps swinging; the correction learns the friction
    assert errors["vgbdm"] < 0.5 * errors["physics"], errors


@pytest.fixture(scope="module")
def tiny():
    ds = _pendulum(8, 0, omega0=(1.0, 2.0), damping=(0.1, 0.5), t_span=2.0)
    model = VGBDM("pendulum", z_dim=2, len_episode=5, hidden=8, encoder_hidden=8,
                  max_epochs=2, n_members=3, random_state=0).fit(ds)
    return ds, model


def test_clone_pickle_and_seed(tiny):
    ds, model = tiny
    ctx = ds.isel(time=slice(0, 6))
    fc = model.predict(ctx, [0.1, 0.3])
    again = pickle.loads(pickle.dumps(model)).predict(ctx, [0.1, 0.3])
    np.testing.assert_array_equal(fc.theta.values, again.theta.values)
    twin = clone(model).fit(ds).predict(ctx, [0.1, 0.3])
    np.testing.assert_array_equal(fc.theta.values, twin.theta.values)
    assert fc.theta.dims == ("trajectory", "time", "lead_time", "member")
    # times without a full episode (the first len_episode - 1) are NaN
    assert np.isnan(fc.theta.isel(time=slice(0, 4))).all()
    assert np.isfinite(fc.theta.isel(time=slice(4, None))).all()


def test_members_follow_random_state_at_predict(tiny):
    # an int repeats the members; None and an instance draw new ones at every call
    # (None once reused seed 0 at every call: the "ensemble" of two calls was one draw)
    ds, model = tiny
    ctx = ds.isel(time=slice(0, 6))

    def theta(random_state):
        return model.set_params(random_state=random_state).predict(ctx, [0.3]).theta.values

    try:
        np.testing.assert_array_equal(theta(3), theta(3))
        assert not np.allclose(theta(3), theta(4))
        assert not np.allclose(theta(None), theta(None))
        rng = np.random.RandomState(0)
        assert not np.allclose(theta(rng), theta(rng))
    finally:
        model.set_params(random_state=0)


def test_data_at_another_spacing_is_refused(tiny):
    # episodes are consecutive samples: at 0.2 apart the parameters inferred were 35% too high
    # (the dynamics read at half speed), with no error
    ds, model = tiny
    coarse = ds.isel(time=slice(0, None, 2))
    with pytest.raises(ValueError, match="VGBDM reads consecutive samples as one fitted step "
                       "0.1 apart.* include 0.2"):
        model.predict(coarse, [0.2])
    with pytest.raises(ValueError, match="0.1 apart"):
        model.infer_parameters(coarse)
    with pytest.raises(ValueError, match="0.1 apart"):
        VGBDM("pendulum", len_episode=3, max_epochs=1).fit(ds.isel(time=[0, 1, 2, 4, 5, 6]))


def test_history_needs_leads_on_the_grid():
    ds = _pendulum(4, 0, t_span=2.0)
    model = VGBDM("pendulum", history_size=3, z_dim=1, len_episode=4, hidden=8,
                  encoder_hidden=8, max_epochs=1, n_members=2, random_state=0).fit(ds)
    assert model.predict(ds.isel(time=slice(0, 4)), [0.1, 0.3]).theta.notnull().any()
    with pytest.raises(ValueError, match="multiples of the sample spacing"):
        model.predict(ds.isel(time=slice(0, 4)), [0.15])


def _half_decay(t, x, p):
    return -p * x


def test_user_physics_callable_and_bad_input():
    ds = _pendulum(4, 0, t_span=1.0)
    with pytest.raises(ValueError, match="physics='pendulm' is unknown"):
        VGBDM("pendulm").fit(ds)
    with pytest.raises(TypeError, match="physics must be"):
        VGBDM(3).fit(ds)
    with pytest.raises(ValueError, match=r"variable\(s\) \['x', 'y', 'z'\] of the physics"):
        VGBDM("lorenz63").fit(ds)
    with pytest.raises(ValueError, match="len_episode=50"):
        VGBDM("pendulum", len_episode=50).fit(ds)
    holed = ds.copy(deep=True)
    holed["theta"][0, 3] = np.nan
    with pytest.raises(ValueError, match="'theta'.*NaN"):
        VGBDM("pendulum", len_episode=5).fit(holed)
    with pytest.raises(ValueError, match="z_dim"):
        VGBDM(z_dim=-1).fit(ds)
    with pytest.raises(NotFittedError):
        VGBDM().predict(ds, [0.1])
    dated = ds.assign_coords(time=np.datetime64("2020-01-01") + (ds.time.values * 3.6e12)
                             .astype("timedelta64[ns]"))
    for model in (VGBDM("pendulum", len_episode=5), NeuralODE(window=4)):
        with pytest.raises(ValueError, match="integrates in model time.*not datetime"):
            model.fit(dated)
    phys = FunctionPhysics(_half_decay, {"rate": (0.0, 1.0)}, ["theta", "omega"])
    assert as_physics(phys) is phys
    model = VGBDM(phys, z_dim=0, len_episode=3, hidden=4, encoder_hidden=4, max_epochs=1,
                  random_state=0).fit(ds)
    assert list(model.infer_parameters(ds).data_vars) == ["rate"]
    assert as_physics(DampedPendulum()).variables == ("theta", "omega")


def test_black_box_vgbdm_in_a_pipeline_after_a_scaler():
    from sklearn.pipeline import Pipeline

    from xdyn.preprocessing import StandardScaler

    one = _pendulum(1, 0, omega0=(1.0, 1.0), t_span=2.0)[["theta", "omega"]]
    pipe = Pipeline([("scale", StandardScaler()),
                     ("vgbdm", VGBDM(None, z_dim=1, len_episode=4, hidden=4, encoder_hidden=4,
                                     max_epochs=1, n_members=2, random_state=0))])
    fc = pipe.fit(one).predict(one, lead_times=[0.1, 0.2])
    assert fc.theta.dims == ("time", "lead_time", "member")
    assert np.isfinite(fc.theta.isel(time=slice(3, None))).all()


def test_pointwise_correction_acts_on_each_grid_site_alone():
    from xdyn.nn.dynamics import GreyBoxFlowModule

    module = GreyBoxFlowModule(2 * 64, FitzHughNagumoPhysics(N=8), z_dim=2, len_episode=3,
                               hidden=8, n_channels=2)
    x, p, z = torch.randn(128, requires_grad=True), torch.tensor([1e-3, 2e-3]), torch.zeros(2)

    def correction(state):
        return module.field(0.0, state, state.new_zeros(0, 128), p, z) - module.physics.rhs(0.0, state, p)

    jac = torch.autograd.functional.jacobian(correction, x)
    # the u tendency at site 5 sees u and v at site 5 only (v is stored after all of u)
    assert (jac[5].abs() > 0).nonzero().flatten().tolist() == [5, 64 + 5]


@pytest.mark.parametrize("interpolant", ["linear", "cubic"])
def test_flow_matching_path_and_its_velocity(interpolant):
    """The cubic path is exact on a cubic in time (uneven times, run ends included).

    The chord is not."""
    from xdyn.nn.dynamics import GreyBoxFlowModule

    def q(t):
        return 0.5 * t**3 - t**2 + 2.0 * t

    def dq(t):
        return 1.5 * t**2 - 2.0 * t + 2.0

    # the state (q(t), t): the physics returns the state itself, so pred is the path point
    module = GreyBoxFlowModule(2, FunctionPhysics(lambda t, x: x), z_dim=0, len_episode=2,
                               correction=False, n_pairs=64, interpolant=interpolant)
    torch.manual_seed(0)
    time = torch.cumsum(torch.rand(3, 6, dtype=torch.float64) + 0.2, dim=1)
    traj = torch.stack([q(time), time], dim=-1)
    path, velocity, *_ = module(traj, time)
    ts = path[..., 1]  # the interpolated time is the step's time (t is linear)
    assert ((ts >= time.min()) & (ts <= time.max())).all()
    torch.testing.assert_close(velocity[..., 1], torch.ones_like(ts))
    exact = torch.allclose(velocity[..., 0], dq(ts)) and torch.allclose(path[..., 0], q(ts))
    assert exact == (interpolant == "cubic")
    if interpolant == "linear":
        assert (velocity[..., 0] - dq(ts)).abs().max() > 0.1
    with pytest.raises(ValueError, match="at least 4 times"):
        GreyBoxFlowModule(2, FunctionPhysics(lambda t, x: x), z_dim=0, len_episode=2,
                          correction=False, interpolant="cubic")(traj[:, :3], time[:, :3])


@pytest.mark.parametrize("interpolant", ["linear", "cubic"])
def test_paths_keep_the_step_far_into_a_long_record(interpolant):
    """Sample indices give the paths exact steps 2e5 samples into a run; float32 times
    there are 1e4 with a step of 0.05, and keep only about a hundredth of it."""
    from xdyn.nn.dynamics import GreyBoxFlowModule

    dt, T = 0.05, 200_001
    index = torch.arange(T)
    t = index.double() * dt
    traj = torch.stack([torch.sin(t), torch.cos(t)], -1).float()[None]  # O(1) states
    module = GreyBoxFlowModule(2, FunctionPhysics(lambda t, x: x), z_dim=0, len_episode=2,
                               correction=False, interpolant=interpolant, time_step=dt)
    k = torch.arange(T - 200, T - 2)[None]
    s = torch.full(k.shape, 0.5)
    ts, xs, target, _ = module._paths(traj, index[None], k, s)
    mid = (k.double() + 0.5) * dt
    np.testing.assert_allclose(ts.double(), mid, rtol=1e-6)
    chord = 1.0 if interpolant == "cubic" else np.sinc(dt / 2 / np.pi)  # |chord / tangent|
    np.testing.assert_allclose(target[..., 0].double(), torch.cos(mid) * chord, atol=2e-3)
    as_float = module._paths(traj, t.float()[None], k, s)[2]
    assert (as_float[..., 0].double() - torch.cos(mid) * chord).abs().max() > 0.01
    with pytest.raises(ValueError, match="need the module's time_step"):
        GreyBoxFlowModule(2, FunctionPhysics(lambda t, x: x), z_dim=0, len_episode=2,
                          correction=False)(traj[:, :8], index[None, :8])


def test_episode_points_are_the_training_paths_inside_one_episode():
    """Refinement scores the episode as training scores pairs: the cubic exact on a cubic."""
    from xdyn.nn.dynamics import GreyBoxFlowModule

    module = GreyBoxFlowModule(2, FunctionPhysics(lambda t, x: x), z_dim=0, history_size=3,
                               len_episode=8, correction=False, interpolant="cubic")
    dt, E = 0.3, 8
    t = dt * torch.arange(E, dtype=torch.float64)
    episode = torch.stack([t**3 - t, 2 * t], -1).expand(4, E, 2)
    ts, xs, target, history = module._episode_points(episode, dt)
    k = torch.arange(2, E - 1).repeat(2)  # steps with two states before them, s = 0 and 1/2
    torch.testing.assert_close(ts[0], t[k] + dt * torch.tensor([0.0, 0.5]).repeat_interleave(5)
                               .to(t))
    torch.testing.assert_close(xs[..., 0], ts**3 - ts)
    torch.testing.assert_close(target[..., 0], 3 * ts**2 - 1)
    torch.testing.assert_close(target[..., 1], torch.full_like(ts, 2.0))
    torch.testing.assert_close(history[0, :, :, 1], 2 * t[k[:, None] + torch.tensor([-2, -1])])


def test_refinement_finds_the_parameter_an_undertrained_encoder_misses():
    """With the physics that made the data the episode's MAP is the true parameter."""
    train, test = _pendulum(32, 0), _pendulum(8, 1, omega0=(1.2, 2.2))
    truth = test.omega0.values
    model = VGBDM("pendulum", correction=False, z_dim=0, len_episode=10, encoder="mlp",
                  encoder_hidden=16, beta_p=1e-3, batch_size=16, max_epochs=3,
                  random_state=0).fit(train)
    first = test.isel(time=slice(0, 10))
    amortized = np.abs(model.infer_parameters(first).omega0.values / truth - 1)
    refined = np.abs(model.set_params(refine_steps=50).infer_parameters(first).omega0.values
                     / truth - 1)
    assert amortized.mean() > 0.05  # three epochs: the encoder has not learnt the map
    assert refined.max() < 0.01, refined
    # the forecast draws its members around the refined mean
    fc = model.predict(first, lead_times=[0.5]).theta.isel(time=-1, lead_time=0)
    assert np.isfinite(fc).all()
    with pytest.raises(ValueError, match="refine_steps"):
        VGBDM("pendulum", refine_steps=-1).fit(train)
    with pytest.raises(ValueError, match="longer than history_size"):
        model.net_.module_.refine(torch.zeros(2, 1, 2), 0.1, torch.zeros(2, 1), 0.1, 0.1, 5)


@pytest.mark.parametrize("episode", ["random", "first"])
def test_training_episode_is_a_window_or_the_first_states(episode):
    from xdyn.forecast.physics import PendulumPhysics
    from xdyn.nn.dynamics import GreyBoxFlowModule

    module = GreyBoxFlowModule(2, PendulumPhysics(), z_dim=1, len_episode=4, episode=episode)
    seen = []
    module.encode = lambda ep: (seen.append(ep), module.__class__.encode(module, ep))[1]
    torch.manual_seed(0)
    traj = torch.arange(64 * 12 * 2, dtype=torch.float32).reshape(64, 12, 2)
    module(traj, torch.arange(12.0).expand(64, 12))
    starts = seen[0][:, 0, 0] / 2 % 12  # the index of each episode's first state
    assert (starts == 0).all() == (episode == "first")
    assert torch.equal(seen[0][:, 1:, 0] - seen[0][:, :-1, 0], torch.full((64, 3), 2.0))
    with pytest.raises(ValueError, match="episode must be"):
        GreyBoxFlowModule(2, PendulumPhysics(), episode="last")


def test_correction_reads_only_its_inputs_and_unknown_names_are_refused():
    ds = _pendulum(8, 0, omega0=(1.0, 2.0), damping=(0.1, 0.5), t_span=2.0)
    model = VGBDM("pendulum", correction_inputs=["omega"], z_dim=1, len_episode=5, hidden=8,
                  encoder_hidden=8, max_epochs=1, random_state=0).fit(ds)
    module = model.net_.module_
    x = torch.randn(4, 2, requires_grad=True)
    p, z = torch.full((4, 1), 1.5), torch.zeros(4, 1)

    def correction(state):
        return module.field(0.0, state, state.new_zeros(4, 0, 2), p, z) \
            - module.physics.rhs(0.0, state, p)

    jac = torch.autograd.functional.jacobian(lambda s: correction(s).sum(0), x)  # (2, 4, 2)
    assert (jac[..., 0] == 0).all() and (jac[..., 1] != 0).any()  # theta unseen, omega read
    with pytest.raises(ValueError, match=r"correction_inputs \['speed'\] are not state"):
        VGBDM("pendulum", correction_inputs=["speed"], len_episode=5, max_epochs=1).fit(ds)


def test_correction_adds_only_to_its_outputs_and_unknown_names_are_refused():
    ds = _pendulum(8, 0, omega0=(1.0, 2.0), damping=(0.1, 0.5), t_span=2.0)
    model = VGBDM("pendulum", correction_outputs=["omega"], z_dim=1, len_episode=5, hidden=8,
                  encoder_hidden=8, max_epochs=1, random_state=0).fit(ds)
    module = model.net_.module_
    x, p, z = torch.randn(4, 2), torch.full((4, 1), 1.5), torch.randn(4, 1)
    field, corr = module.field(0.0, x, x.new_zeros(4, 0, 2), p, z, parts=True)
    physics = module.physics.rhs(0.0, x, p)
    assert torch.equal(field[:, 0], physics[:, 0])  # theta' = omega: the physics alone
    assert (corr[:, 1] != 0).all() and torch.allclose(
        field[:, 1], physics[:, 1] + module.v_scale[1] * corr[:, 1])
    with pytest.raises(ValueError, match=r"correction_outputs \['speed'\] are not state"):
        VGBDM("pendulum", correction_outputs=["speed"], len_episode=5, max_epochs=1).fit(ds)


def test_conv_encoder_infers_the_same_parameters_wherever_the_pattern_sits():
    rd = ReactionDiffusion(N=8, L=2.0)
    ds = rd.simulate(n_trajectories=4, t_span=0.5, dt=0.02, save_every=5, random_state=0)
    model = VGBDM(FitzHughNagumoPhysics(N=8, L=2.0), encoder="conv", z_dim=1, len_episode=4,
                  hidden=8, encoder_hidden=8, max_epochs=2, random_state=0,
                  dtype="float64").fit(ds)
    assert type(model.net_.module_.encoder).__name__ == "ConvEncoder"
    episode = ds.isel(time=slice(0, 4))
    moved = episode.roll(x=3, y=5)
    for name in ("Du", "Dv"):
        np.testing.assert_allclose(model.infer_parameters(moved)[name],
                                   model.infer_parameters(episode)[name], rtol=1e-9)
    fc = model.predict(episode, [0.1])
    assert np.isfinite(fc.u.isel(time=-1)).all()
    # fields of different sizes cannot be convolved as channels of one grid
    with pytest.raises(ValueError, match="encoder='conv' need variables of equal size"):
        VGBDM(FunctionPhysics(_half_decay, {"rate": (0.0, 1.0)}, ["u", "w"]), encoder="conv",
              len_episode=3, max_epochs=1).fit(
            ds.assign(w=ds.u.isel(x=0)).drop_vars("v"))


def test_training_does_not_depend_on_where_the_record_sits_in_time():
    # absolute times went to float32 before their differences: at t ~ 1e4 with dt 0.1 the
    # velocity targets and the fit moved (up to 8% off at t / dt ~ 1e5)
    ds = _pendulum(8, 0, t_span=1.0)
    late = ds.assign_coords(time=ds.time + 1e4)
    kw = dict(z_dim=1, len_episode=4, hidden=8, encoder_hidden=8, max_epochs=3, random_state=0)
    a, b = VGBDM("pendulum", **kw).fit(ds), VGBDM("pendulum", **kw).fit(late)
    np.testing.assert_allclose(b.net_.history[:, "fm_loss"], a.net_.history[:, "fm_loss"],
                               rtol=1e-5)


def test_a_system_physics_reads_the_state_on_its_own_grid():
    # Lorenz-96 stored with k descending was fed to the physics mirrored: errors of 10.5
    from xdyn.systems import Lorenz96

    system = Lorenz96(n=8)
    ds = system.simulate(n_trajectories=2, t_span=1.0, dt=0.05, save_every=2, burn_in=2.0,
                         random_state=0)
    kw = dict(correction=False, z_dim=1, len_episode=2, hidden=4, encoder_hidden=4,
              max_epochs=1, n_members=1, dtype="float64", random_state=0)
    init = ds.isel(time=slice(0, 4))
    ref = VGBDM(system, **kw).fit(ds).predict(init, [0.3])
    rev = VGBDM(system, **kw).fit(ds.isel(k=slice(None, None, -1))).predict(
        init.isel(k=slice(None, None, -1)), [0.3])
    np.testing.assert_allclose(rev.x.sortby("k"), ref.x, atol=1e-12)
    truth = ds.x.sel(time=float(init.time[-1]) + 0.3, method="nearest")
    assert float(abs(ref.x.isel(time=-1, lead_time=0, member=0) - truth).max()) < 0.01


def test_an_unknown_solver_is_refused_at_fit():
    ds = _pendulum(4, 0, t_span=1.0)
    # an unknown solver: flow matching never integrates, so only predict would find it
    with pytest.raises(ValueError, match="method"):
        VGBDM("pendulum", method="rk45", len_episode=3, max_epochs=0).fit(ds)
    with pytest.raises(ValueError, match="method"):   # torchdiffeq's diverges
        VGBDM("pendulum", method="explicit_adams", len_episode=3, max_epochs=0).fit(ds)


def test_refinement_without_states_after_the_history_is_refused_at_fit():
    ds = _pendulum(4, 0, t_span=1.0)
    # refinement on the last len_episode states needs more of them than history_size
    for history in (4, 6):
        with pytest.raises(ValueError, match=f"history_size={history}.*len_episode"):
            VGBDM("pendulum", refine_steps=5, history_size=history, len_episode=4,
                  max_epochs=0).fit(ds)


def test_a_complete_physics_with_nothing_to_learn_is_refused_at_fit():
    ds = _pendulum(4, 0, t_span=1.0)
    # a complete physics with nothing to learn
    with pytest.raises(ValueError, match="nothing to learn.*correction=False and z_dim=0"):
        VGBDM(DampedPendulum(omega0=2.0, damping=0.0), correction=False, z_dim=0,
              len_episode=2, max_epochs=1).fit(ds)


def test_inferred_parameters_are_labelled_the_posterior_median():
    ds = _pendulum(4, 0, t_span=1.0)
    model = VGBDM("pendulum", correction=False, z_dim=0, len_episode=3, hidden=4,
                  encoder_hidden=4, max_epochs=1, random_state=0).fit(ds)
    out = model.infer_parameters(ds)
    assert out.omega0.attrs["long_name"] == "inferred omega0 (posterior median)"
    module = model.net_.module_
    with torch.no_grad():
        mu, _ = module.encode(model._tensor(model._as_batch(*model._split(ds))[:, -3:]))
        p, _ = module.split(mu)          # low + width * sigmoid(mu): the logit-normal median
    np.testing.assert_allclose(out.omega0.values, p[:, 0].double().numpy(), rtol=1e-6)


def test_reaction_diffusion_refuses_data_on_another_domain():
    """The spectral Laplacian uses the physics' L: on another domain Du, Dv come out scaled."""
    ds = ReactionDiffusion(N=32, L=4.0).simulate(n_trajectories=2, t_span=0.03, dt=0.01,
                                                 random_state=0)
    for physics in ("reaction_diffusion", FitzHughNagumoPhysics(N=32)):
        with pytest.raises(ValueError, match=r"y spacing 0.125 is not the physics' L/N = "
                                             r"2/32 = 0.0625.*FitzHughNagumoPhysics\(N="):
            VGBDM(physics, correction=False, z_dim=0, len_episode=2, max_epochs=0).fit(ds)
    model = VGBDM(FitzHughNagumoPhysics(N=32, L=4.0), correction=False, z_dim=0, len_episode=2,
                  encoder="mlp", encoder_hidden=4, max_epochs=1, random_state=0).fit(ds)
    assert set(model.infer_parameters(ds).data_vars) == {"Du", "Dv"}


def test_refinement_of_a_run_does_not_depend_on_the_other_runs():
    """Each episode's MAP is its own problem: refined alone or with others, the same answer."""
    ds = _pendulum(6, 0, omega0=(1.0, 3.0), t_span=1.2, dt=0.05)
    model = VGBDM("pendulum", correction=False, z_dim=0, len_episode=12, encoder="mlp",
                  encoder_hidden=8, max_epochs=2, lr=1e-2, refine_steps=10,
                  random_state=0).fit(ds)
    together = model.infer_parameters(ds).omega0.values
    alone = [float(model.infer_parameters(ds.isel(trajectory=[i])).omega0[0]) for i in range(6)]
    np.testing.assert_allclose(together, alone, rtol=1e-5)


def test_refinement_reaches_a_minimum_and_leaves_a_non_finite_episode_alone():
    """The refined latent is a stationary point of the episode's objective; an episode whose
    objective is NaN keeps its start and does not stop the others."""
    ds = _pendulum(4, 0, omega0=(1.0, 3.0), t_span=1.2, dt=0.05)
    model = VGBDM("pendulum", correction=True, z_dim=2, len_episode=12, encoder="mlp",
                  encoder_hidden=8, max_epochs=2, lr=1e-2, random_state=0,
                  dtype="float64").fit(ds)
    module, dt = model.net_.module_, float(model.dt_)
    values = np.stack([ds[v].values for v in ("theta", "omega")], -1)[:, :12]
    episodes = torch.as_tensor(values, dtype=torch.float64)
    with torch.no_grad():
        start, _ = module.encode(episodes)
    refined = module.refine(episodes, dt, start, 1e-3, 1e-3, 100)
    ts, xs, target, history = module._episode_points(episodes, dt)

    def objective(u):
        p, z = module.split(u)
        K = xs.shape[1]
        pred = module.field(ts, xs, history, p[:, None].expand(-1, K, -1),
                            z[:, None].expand(-1, K, -1))
        fm = (((pred - target) / module.v_scale) ** 2).mean((-2, -1))
        return fm + 0.5e-3 * u.pow(2).sum(-1)

    u = refined.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(u).sum(), u)
    assert grad.abs().max() < 1e-6, grad
    assert (objective(refined) < objective(start) - 1e-6).all()
    broken = episodes.clone()
    broken[1, 5, 0] = float("nan")
    out = module.refine(broken, dt, start, 1e-3, 1e-3, 100)
    torch.testing.assert_close(out[1], start[1])
    torch.testing.assert_close(out[[0, 2, 3]], refined[[0, 2, 3]])
