"""
Amortized ensemble assimilation learned from observations only
==============================================================

:class:`xdyn.assimilation.AmortizedAssimilator` (McCabe & Brown 2021) replaces
the analysis step of an ensemble filter by a network: each forecast member,
the ensemble's banded covariance, the model tendency, the observations and a
memory go in, the analysis member comes out. The network is trained without
the truth: over short sequences the ensemble is cycled through the
differentiable Lorenz-96 model and the loss is the misfit of the ensemble-mean
forecast to the *next noisy observations*.

This example trains a small network for a few seconds on a 20-site
Lorenz-96 and compares it, on a new trajectory, with a LETKF of the same
ensemble size. A CPU-sized training does not reach the LETKF; the
``lorenz96-amortized`` experiment (``xdyn run lorenz96-amortized``) runs the
full protocol and records the learning curve.
"""

# %%
# Observations of a training and a test truth
# -------------------------------------------
# Every site is observed every 0.1 time units (two RK4 steps of 0.05) with
# noise std 1. The training truths are four trajectories; the test truth is a
# new one.
import warnings

import matplotlib.pyplot as plt

from xdyn.assimilation import LETKF, AmortizedAssimilator, LostTrackWarning
from xdyn.metrics import analysis_rmse, state_rmse
from xdyn.observe import observe
from xdyn.systems import Lorenz96

warnings.simplefilter("ignore", LostTrackWarning)
system = Lorenz96(n=20)


def twin(seed, n_trajectories=1, n_times=200):
    truth = system.simulate(n_trajectories=n_trajectories, n_steps=2 * (n_times - 1), dt=0.05,
                            save_every=2, burn_in=10.0, random_state=seed)
    return truth, observe(truth, "identity", noise_std=1.0, random_state=seed + 100)


train_truth, train_obs = twin(0, n_trajectories=4, n_times=100)
test_truth, test_obs = twin(1)

# %%
# Train the update network
# ------------------------
# Only the observations go into ``fit``; the learning rate warm-up and
# halving schedule, AdamW and the training-time clamp follow the original.
amortized = AmortizedAssimilator(n_members=6, hidden_size=16, seq_len=10, n_sequences=64,
                                 batch_size=16, max_epochs=4, lr=3e-3, warmup_epochs=0,
                                 device="cpu", random_state=0, raise_on_divergence=False)
amortized.fit(train_obs)
[round(h["train_loss"], 1) for h in amortized.history_]

# %%
# Assimilate a new trajectory
# ---------------------------
# ``predict`` cycles forecast and learned update over observations it never
# saw, with no refit; the LETKF uses the same 6 members.
analysis = amortized.predict(test_obs)
letkf = LETKF(n_members=6, inflation=1.1, localization_radius=3.0, random_state=0,
              raise_on_divergence=False).fit(test_obs)
letkf_analysis = letkf.predict(test_obs)
scores = {"amortized": analysis_rmse(analysis, test_truth, burn_in=2.0),
          "LETKF": analysis_rmse(letkf_analysis, test_truth, burn_in=2.0)}
{k: round(v, 3) for k, v in scores.items()}

# %%
# Analysis error through time
# ---------------------------
fig, ax = plt.subplots(figsize=(8, 3))
for label, an in (("amortized", analysis), ("LETKF", letkf_analysis)):
    err = state_rmse(an, test_truth)
    ax.plot(err["time"], err, label=f"{label} ({scores[label]:.2f})")
ax.axhline(1.0, color="k", ls=":", lw=0.8, label="observation error")
ax.set_xlabel("time")
ax.set_ylabel("analysis RMSE")
ax.set_yscale("log")
ax.legend()
plt.show()
