"""
Bring your own model and observation operator
=============================================

Write a dynamical system and an observation operator of your own and use them
with an ensemble Kalman filter, as the built-in ones are used. The model is the
Lorenz (1984) low-order general circulation: a westerly wind ``x`` and a
travelling wave ``(y, z)``. The operator sees the first and the last component
of the state (``x`` and ``z``); the filter has to infer ``y`` from the dynamics.
The user guide page "Your own model and observation operator" explains each part.
"""

# %%
# The model
# ---------
# A system subclasses :class:`xdyn.systems.DynamicalSystem`: parameters stored in
# ``__init__`` (scikit-learn convention), the state's variables, a batched and
# differentiable right-hand side, and initial states drawn from
# ``check_random_state(random_state)``. ``_parameter_constraints`` declares what
# each parameter must be, so a bad value is refused with its name.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.utils import check_random_state

from xdyn.assimilation import EnKF
from xdyn.metrics import rmse
from xdyn.observe import ObservationOperator, observe, operator_from_spec
from xdyn.systems import DynamicalSystem, StateVariable
from xdyn.systems.integrators import array_namespace


class Lorenz84(DynamicalSystem):
    """Lorenz (1984), Tellus 36A: 98-110."""

    name = "lorenz84"
    default_dt = 0.05
    _parameter_constraints = {"a": "real>0", "b": "real", "F": "real", "G": "real"}
    supports_numpy = True  # rhs runs on numpy arrays too: a fast path for tiny states

    def __init__(self, a=0.25, b=4.0, F=8.0, G=1.0, dtype="float64", device="cpu"):
        self.a = a
        self.b = b
        self.F = F
        self.G = G
        self.dtype = dtype
        self.device = device

    def _variables(self):
        return [
            StateVariable("x", attrs={"units": "1", "long_name": "westerly wind"}),
            StateVariable("y", attrs={"units": "1", "long_name": "cosine wave amplitude"}),
            StateVariable("z", attrs={"units": "1", "long_name": "sine wave amplitude"}),
        ]

    def rhs(self, t, state):
        xp = array_namespace(state)  # torch for tensors, numpy for arrays
        x, y, z = state[..., 0], state[..., 1], state[..., 2]
        a, b, F, G = self.a, self.b, self.F, self.G
        return xp.stack(
            (-y**2 - z**2 - a * x + a * F, x * y - b * x * z - y + G, b * x * y + x * z - z),
            axis=-1,
        )

    def random_initial_state(self, n, random_state=None):
        rng = check_random_state(random_state)
        return np.array([1.0, 0.0, 0.0]) + 0.5 * rng.standard_normal((n, 3))


truth = Lorenz84().simulate(t_span=40.0, dt=0.05, burn_in=50.0, random_state=0)
truth

# %%
# The observation operator
# ------------------------
# An operator subclasses :class:`xdyn.observe.ObservationOperator` and says which
# flat-state components it observes. Defining the class registers it, so the
# operator recorded in the observations' attrs can be rebuilt from them.


class FirstAndLast(ObservationOperator):
    """Observe the first and the last component of the flat state."""

    def indices(self, layout):
        n_state = sum(v.size for v in layout)
        return np.array([0, n_state - 1])


noise_std = 0.1
obs = observe(truth, FirstAndLast(), noise_std=noise_std, every=5, random_state=1)
print(obs.attrs["operator"], "->", operator_from_spec(obs.attrs["operator"]))
print("observed:", obs.variable.values)

# %%
# Assimilate
# ----------
# The EnKF rebuilds the system and the operator from the observation attrs (pass
# ``system=`` and ``operator=`` to use other ones) and runs its 10 members through
# ``rhs`` in one batched call per step.
enkf = EnKF(n_members=10, inflation=1.05, random_state=0)
analysis = enkf.fit(obs).predict(obs)
late = analysis.time > 10  # after the spin-up from the model's climatology
error = rmse(analysis[["x", "y", "z"]].mean("member").sel(time=late),
             truth.sel(time=analysis.time[late]))
for name in "xyz":
    print(f"{name}: analysis RMSE {float(error[name]):.3f}, "
          f"climatological std {float(truth[name].std()):.2f}, obs noise {noise_std}")

# %%
# Truth, observations and the analysis
# ------------------------------------
# ``y`` is never observed, yet the ensemble mean follows it: the dynamics couple
# it to the observed ``x`` and ``z``. The shading is plus or minus one ensemble
# standard deviation.
mean, std = analysis.mean("member"), analysis.std("member")
fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True, layout="constrained")
window = truth.time <= 20
for ax, name in zip(axes, "xyz"):
    ax.plot(truth.time[window], truth[name][window], color="k", lw=1, label="truth")
    sel = mean.time <= 20
    ax.plot(mean.time[sel], mean[name][sel], color="C0", lw=1, label="EnKF mean")
    ax.fill_between(mean.time[sel], (mean[name] - std[name])[sel],
                    (mean[name] + std[name])[sel], color="C0", alpha=0.25, lw=0)
    seen = obs.variable.values == name
    if seen.any():
        y = obs.observation.isel(obs=int(np.flatnonzero(seen)[0]))
        ax.plot(obs.time[obs.time <= 20], y[obs.time <= 20], "o", ms=2.5, color="C3",
                label="observations")
    ax.set_ylabel(f"{name} ({truth[name].attrs['long_name']})", fontsize=8)
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncols=3)  # off the curves
axes[-1].set_xlabel("model time (1 unit ~ 5 days)")
fig.suptitle("Lorenz-84 observed through x and z: an EnKF with a hand-written model")
plt.show()
