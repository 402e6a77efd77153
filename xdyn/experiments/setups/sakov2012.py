"""Sakov, Oliver & Bertino (2012): Lorenz-63, all variables observed every 25 steps.

As DAPPER's ``mods/Lorenz63/sakov2012.py``: ``dt = 0.01``, the three
variables observed every 25 model steps with noise variance 2, the initial
ensemble drawn around the truth's start with variance 2.

``reference_rmse`` is the analysis RMSE DAPPER 1.7.1 gives on this setup
(the project's issue #5 measurements); ``dapper_expected`` the "Expected
rmse.a" of DAPPER's file where it lists the same configuration.
"""

from __future__ import annotations

import math

from xdyn.experiments.setups._base import MethodConfig, TwinSetup

__all__ = ["SAKOV2012"]

SAKOV2012 = TwinSetup(
    name="sakov2012",
    citation="Sakov, Oliver & Bertino (2012), Mon. Wea. Rev. 140; DAPPER mods/Lorenz63/sakov2012",
    system="lorenz63",
    preset="sakov2012",
    operator="identity",
    noise_std=math.sqrt(2.0),
    obs_every=25,
    initial_spread=math.sqrt(2.0),
    tuning=(
        MethodConfig("OI", "oi", {}, 1.23, ("OptInterp", {}), 1.25),
        MethodConfig("3D-Var (B clim)", "3dvar", {}, 1.20, ("Var3D", {})),
        MethodConfig("3D-Var (B x 0.1)", "3dvar", {"B_scale": 0.1}, 1.03,
                     ("Var3D", {"xB": 0.1}), 1.04),
        MethodConfig("ExtKF (infl 180)", "extkf", {"inflation": 180.0}, 0.87,
                     ("ExtKF", {"infl": 180}), 0.92),
        MethodConfig("EnKF sqrt N=10 infl 1.02 rot", "enkf",
                     {"kind": "sqrt", "n_members": 10, "inflation": 1.02, "rotate": True}, 0.57,
                     ("EnKF", {"upd_a": "Sqrt", "N": 10, "infl": 1.02, "rot": True}), 0.60),
        MethodConfig("EnKF-N N=10 (no inflation to tune)", "enkf-n", {"n_members": 10}, None,
                     ("EnKF_N", {"N": 10, "dual": True})),
        MethodConfig("PF N=100 reg 2.4 NER 0.3", "pf",
                     {"n_members": 100, "regularization": 2.4, "resampling_threshold": 0.3}, 0.35,
                     ("PartFilt", {"N": 100, "reg": 2.4, "NER": 0.3}), 0.38),
    ),
)
