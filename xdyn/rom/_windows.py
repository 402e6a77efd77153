"""Training windows, grid shapes and standardisation of :class:`~xdyn.rom.LatentTransformerROM`."""

from __future__ import annotations

import numpy as np
import torch


class Windows(torch.utils.data.Dataset):
    """Windows of ``length`` consecutive snapshots of each trajectory (never across two).

    ``frames`` is ``(n_traj, n_time, *shape)``, or with ``copies=True``
    ``(n_copies, n_traj, n_time, *shape)``: each window is then read from a
    random copy (shifted copies of the trajectories, reduced beforehand).
    ``shift=True`` rolls each window by a random number of points along its
    axis ``shift_axis`` (a periodic grid dim, :func:`shift_axis`). Random
    draws come from the net's per-epoch seeded torch RNG (no worker processes).
    """

    def __init__(self, frames, length, stride, shift=False, copies=False, shift_axis=-1):
        self.frames = torch.as_tensor(frames if copies else frames[None])
        self.shift = shift
        self.shift_axis = shift_axis
        n_traj, n_time = self.frames.shape[1:3]
        self.index = [(b, s) for b in range(n_traj) for s in range(0, n_time - length + 1, stride)]
        self.length = length

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        b, s = self.index[i]
        copy = int(torch.randint(len(self.frames), ())) if len(self.frames) > 1 else 0
        window = self.frames[copy, b, s:s + self.length]
        if self.shift:
            axis = self.shift_axis
            window = torch.roll(window, int(torch.randint(window.shape[axis], ())), dims=axis)
        return window, torch.zeros(())


def grid_shape(layout):
    """``(channels, H, W)`` when every variable is on one 2-D grid divisible by 4.

    One grid means the same two feature dims, by name and in the same order:
    a variable stored ``(x, y)`` next to one stored ``(y, x)``, or one on
    ``(lat, lon)`` of the same sizes, is not another channel of the same field
    (a convolution or a roll along the last axis would mix directions). Else
    ``(n_features,)``.
    """
    if layout.kind == "xarray":
        grids = {(v.feature_dims, v.shape) for v in layout.info.variables}
        if len(grids) == 1:
            ((dims, shape),) = grids
            if len(shape) == 2 and shape[0] % 4 == 0 and shape[1] % 4 == 0:
                return (len(layout.info.variables), *shape)
        return (layout.info.n_features,)
    return (int(layout.info),)


def shift_axis(layout, dim="x"):
    """Axis (-2 or -1) of the ``(channels, H, W)`` grid of :func:`grid_shape` named ``dim``.

    The periodic dim a shift augmentation rolls along (the ROM's ``shift_dim``),
    found by name: data stored ``(time, x, y)`` roll along ``x`` as those
    stored ``(time, y, x)``.
    """
    dims = layout.info.variables[0].feature_dims
    if dim not in dims:
        raise ValueError(f"shift_augmentation=True rolls the fields along their periodic dim "
                         f"{dim!r}; their grid dims are {tuple(dims)}: set shift_dim to the "
                         f"periodic one (e.g. shift_dim={dims[-1]!r}), or set "
                         f"shift_augmentation=False")
    return dims.index(dim) - len(dims)


def roll_fields(values, shape, shift, axis=-1):
    """``(..., n_features)`` snapshots of ``(channels, H, W)`` fields rolled ``shift`` points
    along grid axis ``axis`` (-1: W, -2: H)."""
    if shift == 0:
        return values
    fields = values.reshape(*values.shape[:-1], *shape)
    return np.roll(fields, shift, axis=axis).reshape(values.shape)


def standardisation(values, layout, shape=None, axis=None):
    """Mean snapshot and one standard deviation per variable (so (u, v) keep their ratio).

    ``layout`` None: one scale for all features (e.g. a reducer's coefficients,
    whose relative sizes carry the energy of each mode). ``shape`` and ``axis``:
    the statistics of every roll of the ``shape`` ``(channels, H, W)`` fields
    along ``axis`` (a shift augmentation's), so the mean is the same after a roll.
    """
    flat = values.reshape(-1, values.shape[-1])
    mean = flat.mean(0)
    if axis is not None:
        mean = np.broadcast_to(mean.reshape(shape).mean(axis, keepdims=True), shape).ravel()
    scale = np.empty_like(mean)
    columns = [v.columns for v in layout.info.variables] \
        if layout is not None and layout.kind == "xarray" else [slice(None)]
    for cols in columns:
        std = float((flat[:, cols] - mean[cols]).std())
        scale[cols] = std if std > 0 else 1.0
    return mean, scale
