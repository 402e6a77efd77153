"""
Neural 3D-Var on Lorenz-63: three encoders against 3D-Var
=========================================================

:class:`xdyn.assimilation.NeuralVar3D` learns the analysis step of a 3D-Var
cycle: from the model forecast, one 3D-Var step, then a correction that is
linear in the innovations of the last ``window`` observations, with a gain
that an encoder (MLP, GRU or LSTM) reads off those observations. It is
trained on short Lorenz-63 trajectories observed in ``x`` and ``y`` (noise
0.5) and then cycles, like any filter, over trajectories it has never seen.
"""

# %%
# Training and test trajectories
# ------------------------------
# Every trajectory starts from one spun-up state plus N(0, 2^2) noise; the
# filters start from that spun-up state. Training and test sets are drawn
# with different seeds.
import matplotlib.pyplot as plt
import numpy as np

from xdyn.assimilation import NeuralVar3D, Var3D
from xdyn.metrics import rmse
from xdyn.observe import observe
from xdyn.systems import Lorenz63

system = Lorenz63()
prior = system.to_state(system.simulate(n_steps=0, burn_in=20.0, random_state=0)
                        .isel(time=0)).numpy()


def trajectories(n, seed):
    rng = np.random.RandomState(seed)
    truth = system.simulate(n_trajectories=n, n_steps=99, x0=prior + 2 * rng.standard_normal((n, 3)))
    return truth, observe(truth, ["x", "y"], noise_std=0.5, random_state=seed + 1)


train, obs_train = trajectories(40, 1)
test, obs_test = trajectories(20, 2)

# %%
# Three encoders, and 3D-Var on the same observations
# ---------------------------------------------------
common = dict(window=8, max_epochs=8, batch_size=128, device="cpu", initial_state=prior, initial_spread=2.0,
              random_state=0, module__hidden_size=32)
analyses = {}
for encoder in ("mlp", "gru", "lstm"):
    est = NeuralVar3D(encoder=encoder, **common).fit(obs_train, train)
    analyses[f"NeuralVar3D {encoder}"] = est.predict(obs_test)
analyses["3D-Var (B x 0.01)"] = Var3D(B_scale=0.01, initial_state=prior, initial_spread=2.0) \
    .fit(obs_train, train).predict(obs_test)


def error(an):
    """RMSE over the state, averaged over the test trajectories, per time."""
    return rmse(an[["x", "y", "z"]].to_array("v"), test.to_array("v"), dim="v").mean("trajectory")


for name, an in analyses.items():
    print(f"{name:<20} RMSE after t=0.3: {float(error(an).sel(time=slice(0.3, None)).mean()):.3f}")

# %%
# Error through time and one test trajectory
# ------------------------------------------
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.8))
for name, an in analyses.items():
    ax0.plot(test.time, error(an), label=name, lw=1)
ax0.set_yscale("log")
ax0.set_xlabel("model time")
ax0.set_ylabel("RMSE (mean over 20 test trajectories)")
ax0.legend(fontsize=8)
ax1.plot(test.time, test.z.isel(trajectory=0), "k", lw=1.5, label="truth z (unobserved)")
for name in ("NeuralVar3D gru", "3D-Var (B x 0.01)"):
    ax1.plot(test.time, analyses[name].z.isel(trajectory=0), lw=1, ls="--", label=name)
ax1.set_xlabel("model time")
ax1.set_ylabel("z")
ax1.legend(fontsize=8)
fig.tight_layout()
plt.show()
