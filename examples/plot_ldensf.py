"""
Latent ensemble score filter: locating a tsunami from a few tide gauges
=======================================================================

LD-EnSF (Xiao, Si & Chen, ICLR 2026) runs the ensemble score filter in the
latent space of a *latent dynamics network* (LDNet): a small recurrent model
of the flow's latent state, driven by the unknown physical parameters, with
a decoder that evaluates the field at any point. An LSTM *observation
encoder* turns the history of sparse, noisy station records into latent
"observations", so the filter never touches the full grid: an assimilation
step is a few small tensor operations.

Here: a surface bump released at an unknown place in a 1000 km periodic
basin (linearised rotating shallow water, ``xdyn.systems.ShallowWater``'s
``"tsunami"`` preset), seen at every 2nd grid point of a 16 x 16 grid
through its surface height with 10 % noise. The LDNet and the encoder learn
from twenty releases; the filter then follows two unseen ones and estimates
where they started, which it carries as part of its latent state. Tiny sizes
so that the example runs in seconds; ``xdyn run tsunami-ldensf --quick`` is
the CPU-sized experiment.
"""

# %%
# Releases, and their sparse observations
# ---------------------------------------
import matplotlib.pyplot as plt
import numpy as np

from xdyn.assimilation import LDEnSF, ObservationEncoder
from xdyn.datasets.ldensf_data import tsunami_ldensf
from xdyn.experiments.ldensf import LDEnSFSetup, sparse_observations
from xdyn.rom import LDNet

truth = tsunami_ldensf(n_trajectories=22, N=16, n_saved=12, bump_width=0.12, random_state=0)
train, test = truth.isel(trajectory=slice(0, 20)), truth.isel(trajectory=slice(20, None))
setup = LDEnSFSetup(N=16, case="tsunami")      # gauges every `stride` points, 10 % noise
obs_train = sparse_observations(train, setup, random_state=1)
obs_test = sparse_observations(test, setup, random_state=2)
print(f"{obs_test.sizes['obs']} gauges on {16 * 16} grid points")

# %%
# Fit the LDNet and the encoder, then filter the unseen releases
# --------------------------------------------------------------
# ``fit`` trains the LDNet on the training releases and the encoder on their
# observations. The semi-implicit sampler trusts the encoder as far as its
# training residuals say, however small they are (the explicit one of the
# paper has to floor them).
small = dict(random_state=0, device="cpu")
ldnet = LDNet(n_latent=6, n_points=64, max_epochs=50, **small)
encoder = ObservationEncoder(hidden_size=16, max_epochs=50, **small)
lde = LDEnSF(ldnet, encoder, n_members=20, n_pseudo_steps=50,
             integrator="semi-implicit", random_state=0).fit(obs_train, train)
analysis = lde.predict(obs_test)
rel = (np.sqrt(((analysis.eta - test.eta) ** 2).mean(("y", "x")))
       / np.sqrt((test.eta**2).mean(("y", "x"))))
print("surface-height relative RMSE, mean over time:", rel.mean("time").values.round(2))
print(f"one analysis step: {1e3 * lde.timing_['analysis']:.1f} ms")

# %%
# Where did the bumps start?
# --------------------------
# The estimates through time, with the ensemble spread, against the truth
# (dashed); the surface height of the first release and its analysis at
# the last step, gauges as dots.
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), constrained_layout=True)
t = (analysis.time.values - analysis.time.values[0]) / 3600
for j in range(2):
    for p, ls in (("bump_x", "-"), ("bump_y", ":")):
        est, sd = analysis[p].isel(trajectory=j), analysis[f"{p}_spread"].isel(trajectory=j)
        axes[0].plot(t, est, ls, color=f"C{j}", label=f"release {j + 1}, {p}")
        axes[0].fill_between(t, est - sd, est + sd, color=f"C{j}", alpha=0.15)
        axes[0].axhline(float(test[p][j]), color=f"C{j}", ls="--", lw=0.8)
axes[0].set(xlabel="hours", ylabel="fraction of the basin", title="release location")
axes[0].legend(fontsize=6)
vmax = float(abs(test.eta.isel(trajectory=0, time=-1)).max())
kw = dict(cmap="RdBu_r", vmin=-vmax, vmax=vmax)
rows, cols = np.unravel_index(obs_test.state_index.values % (16 * 16), (16, 16))
for ax, field, title in ((axes[1], test, "truth"), (axes[2], analysis, "LD-EnSF analysis")):
    ax.pcolormesh(field.eta.isel(trajectory=0, time=-1), **kw)
    ax.plot(cols + 0.5, rows + 0.5, "k.", ms=2)
    ax.set(title=f"{title}, surface height", aspect="equal", xticks=[], yticks=[])
plt.show()

# %%
# The gauges through the decoder as well
# --------------------------------------
# The paper's filter sees the gauges only through the encoder, so the
# encoder's errors bound the analysis. ``likelihood="joint"`` conditions on
# the gauge records themselves too, through the decoder at the gauges
# (linearised at the forecast mean and again at each analysis mean), and
# ``refine_parameters`` draws the release location from its posterior given
# every record so far, through the LDNet rolled out from the start: the same
# fitted networks, an analysis tens of times costlier.
joint = lde.set_params(likelihood="joint", refine_parameters=True).predict(obs_test)
rel_joint = (np.sqrt(((joint.eta - test.eta) ** 2).mean(("y", "x")))
             / np.sqrt((test.eta**2).mean(("y", "x"))))
print("with the gauges through the decoder:", rel_joint.mean("time").values.round(2))
for name, a in (("encoder only", analysis), ("joint, refined", joint)):
    err = [float(abs(a[p].isel(time=-1) - test[p]).mean()) for p in ("bump_x", "bump_y")]
    print(f"release location error, {name}: {np.round(err, 4)} of the basin")
print(f"one analysis step: {1e3 * lde.timing_['analysis']:.1f} ms")
