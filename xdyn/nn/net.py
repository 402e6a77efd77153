"""XdynNet: the one skorch ``NeuralNet`` every learned xdyn estimator trains with.

skorch writes the training loop once (``fit`` -> epochs -> ``train_step`` ->
``get_loss``) and adds behaviour with callbacks; this subclass adds what every
xdyn estimator needs on top (``DESIGN.md``: Estimators):

* ``device="auto"``: CUDA when present, else CPU, resolved when the net is used
  (the parameter keeps the value it was given, so a net cloned or unpickled on a
  CPU-only machine runs there);
* ``dtype``: float inputs (arrays, tensors, dicts and tuples of them) and the
  module's parameters are cast to it;
* ``random_state``: module initialisation and each training and validation
  epoch (batch shuffling, dropout, a module's own draws) draw from torch RNG
  streams seeded by ``(random_state, epoch)``, inside
  :func:`torch.random.fork_rng` so the global RNG is left as it was; hence a
  run stopped at a checkpoint and resumed ends with the same weights as an
  uninterrupted run;
* ``progress``: a tqdm bar over epochs;
* a training loss that turns NaN or infinite, and weights or a loss left so by
  the last step, raise :class:`FloatingPointError`
  (:class:`~xdyn.nn.callbacks.FiniteLoss`) instead of returning NaN weights as fitted;
* ``train_split=None``: no hidden validation split (validation data are passed
  explicitly, e.g. ``train_split=predefined_split(valid_ds)``), so nothing of a
  validation or test set can leak into training.

Unusual objectives (self-supervised through a differentiable model, flow
matching, ELBOs) subclass :class:`XdynNet` and override ``get_loss`` or
``train_step``; nobody writes an epoch loop.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
from skorch import NeuralNet

from xdyn._threads import threads_for
from xdyn.nn.callbacks import EpochProgressBar, FiniteLoss
from xdyn.utils._torch import int_seed, resolve_device, resolve_dtype

__all__ = ["XdynNet"]


def _derived_seed(seed: int, *keys: int) -> int:
    """A well-mixed 32-bit seed for the stream ``keys`` of ``seed``."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


# Keys of the derived RNG streams: module initialisation, then one per training
# epoch and one per validation epoch.
_INIT_STREAM = 0
_EPOCH_STREAM = 1
_VALID_STREAM = 2

# Multiply-adds per batch (parameters x batch size, for dense layers) below
# which one torch thread is faster: about 10 ms of work on one core, where the
# thread hand-off stops costing more than it gains (10-25x slower on a busy
# machine for a small MLP; see xdyn/_threads.py).
_SMALL_BATCH_WORK = 20_000_000


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


@contextlib.contextmanager
def _seeded_torch(seed: int):
    """torch's global streams seeded with ``seed`` inside, and restored on exit.

    fork_rng must save/restore the CUDA generators too when they exist:
    torch.manual_seed seeds them as well.
    """
    with torch.random.fork_rng(devices=_cuda_devices()):
        torch.manual_seed(seed)
        yield


def _cast(data, dtype: torch.dtype, np_dtype, device=None):
    """Cast floating arrays/tensors in ``data`` (recursing into dicts, lists,
    tuples) to ``dtype``; move tensors to ``device`` when given. Integer and
    boolean data keep their dtype (indices, masks)."""
    if isinstance(data, torch.Tensor):
        if data.is_floating_point() and data.dtype != dtype:
            data = data.to(dtype)
        return data if device is None else data.to(device)
    if isinstance(data, np.ndarray):
        if np.issubdtype(data.dtype, np.floating):
            if np_dtype is not None:
                data = data.astype(np_dtype, copy=False)
            elif device is None:
                data = torch.as_tensor(data).to(dtype)
        if device is not None:
            return _cast(torch.as_tensor(data), dtype, np_dtype, device)
        return data
    if isinstance(data, dict):
        return {k: _cast(v, dtype, np_dtype, device) for k, v in data.items()}
    if isinstance(data, (list, tuple)) and not isinstance(data, str):
        out = [_cast(v, dtype, np_dtype, device) for v in data]
        return tuple(out) if isinstance(data, tuple) else out
    return data


def _numpy_dtype(dtype: torch.dtype):
    try:
        return torch.empty((), dtype=dtype).numpy().dtype
    except TypeError:  # e.g. bfloat16 has no numpy twin: cast as tensors later
        return None


# Criteria that compare prediction and target element by element: torch broadcasts
# targets of another shape ((B, 1) against (B,) is a (B, B) loss) with only a warning
_ELEMENTWISE_LOSSES = (torch.nn.MSELoss, torch.nn.L1Loss, torch.nn.SmoothL1Loss,
                       torch.nn.HuberLoss, torch.nn.BCELoss, torch.nn.BCEWithLogitsLoss)


def _match_target(y_pred: torch.Tensor, y_true):
    """``y_true`` in the shape of ``y_pred`` for an element-wise loss.

    A 1-D target of a one-output module, as scikit-learn regressors take it (``(B,)``
    against ``(B, 1)``), or the reverse, differs only by a trailing axis of one and is
    reshaped; any other difference is an error naming both shapes, never a broadcast.
    """
    pred, true = tuple(y_pred.shape), tuple(y_true.shape)
    if true == pred:
        return y_true
    if pred == (*true, 1) or true == (*pred, 1):
        return y_true.reshape(pred)
    raise ValueError(f"the module's output has shape {pred} and the target y {true}: they "
                     f"must match (a one-output module takes y of shape (n,) or (n, 1))")


def _on_resolved_device(method):
    """Run ``method`` with ``self.device`` resolved (see ``XdynNet._resolved_device``)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._resolved_device():
            return method(self, *args, **kwargs)

    return wrapper


class XdynNet(NeuralNet):
    """skorch ``NeuralNet`` with xdyn's device, dtype, seeding and progress conventions.

    Parameters
    ----------
    module : torch.nn.Module class or instance
        The network. Pass the class (e.g. :class:`xdyn.nn.MLP`) with its
        arguments as ``module__name=value`` so that ``random_state`` seeds its
        initialisation and ``GridSearchCV`` can tune them.
    *args
        Not accepted: every parameter after ``module`` is keyword-only.
    criterion : torch.nn.Module class, default=torch.nn.MSELoss
        The loss of the default ``get_loss``; ``criterion__*`` are its arguments.
        An element-wise loss (MSE, L1, Huber, BCE) needs ``y`` in the shape of the
        module's output; a 1-D ``y`` for a one-output module (output ``(n, 1)``) is
        taken as ``(n, 1)``, as scikit-learn regressors take it. Other shapes raise
        a ValueError naming both (never a broadcast loss).
    optimizer : torch.optim.Optimizer class, default=torch.optim.Adam
        ``optimizer__*`` are its arguments.
    lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=10
        Epochs of one ``fit`` (and of one ``partial_fit``).
    batch_size : int, default=128
        Mini-batch size (-1: the whole training set).
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device, default="auto"
        ``"auto"`` is CUDA when :func:`torch.cuda.is_available`, else CPU. The
        value is stored unchanged; the device in use after ``initialize`` is
        :attr:`device_`. An explicit device this machine lacks raises a
        ValueError (see :func:`xdyn.utils.resolve_device`).
    dtype : str or torch.dtype, default="float32"
        Floating dtype of the parameters and of every float input. A string is
        a torch dtype name (:func:`xdyn.utils.resolve_dtype`): ``"float"`` is
        torch's float32, not numpy's float64; write ``"float64"`` for double.
        A non-floating dtype raises ValueError at ``initialize`` (``fit``).
        Outputs of a dtype numpy lacks (``"bfloat16"``) are returned as float32.
    random_state : int, RandomState, Generator or None, default=None
        Seeds module initialisation and each training epoch (shuffling,
        dropout) from ``(random_state, epoch)``, and each validation epoch from
        a stream of its own; the global torch RNG is left untouched. None: draw
        from the global RNG (not reproducible).
    progress : bool, default=False
        Show a tqdm bar over epochs (:class:`EpochProgressBar`).
    train_split : callable or None, default=None
        None trains on everything given; pass validation data explicitly with
        ``train_split=predefined_split(skorch.dataset.Dataset(X_valid, y_valid))``.
    **kwargs
        Any other :class:`skorch.NeuralNet` parameter (``callbacks``,
        ``module__*``, ``optimizer__*``, ``iterator_train__*``, ``warm_start``,
        ``verbose`` -- 0 by default here ...). Training batches are shuffled
        unless ``iterator_train__shuffle=False``.

    Attributes
    ----------
    module_ : torch.nn.Module
        The initialised (trained) network.
    device_ : torch.device
        The device the net runs on.
    dtype_ : torch.dtype
        The resolved ``dtype``.
    seed_ : int or None
        The integer seed derived from ``random_state`` at ``initialize``.
    history_ : skorch.history.History
        Per-epoch losses (``net.history[-1, "train_loss"]``).

    See Also
    --------
    xdyn.nn.MLP : a small module to pass as ``module``.
    skorch.callbacks.EarlyStopping, skorch.callbacks.Checkpoint,
    skorch.callbacks.LRScheduler : re-exported from :mod:`xdyn.nn`.

    Notes
    -----
    **Unusual objectives.** Override ``get_loss(self, y_pred, y_true, X=None,
    training=False)`` (or ``train_step``) in a subclass. Inside it ``X`` and
    ``y_true`` are already tensors of :attr:`dtype_` on :attr:`device_`
    (dicts and tuples of them when the input was one); with ``fit(X)``
    (``y=None``) ``y_true`` is a placeholder to ignore. A dict ``X`` is passed
    to ``module.forward`` as keyword arguments.

    **Resuming.** Save with ``save_params(f_params=..., f_optimizer=...,
    f_history=...)`` (or a :class:`~skorch.callbacks.Checkpoint`), load into a
    fresh net with the same parameters (``initialize()`` then ``load_params``)
    and continue with ``partial_fit``: epoch ``k`` draws from the same seed
    whether or not the run was interrupted before it.

    Examples
    --------
    Regression:

    >>> import numpy as np
    >>> from xdyn.nn import MLP, XdynNet
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(256, 2))
    >>> y = X[:, :1] * X[:, 1:]
    >>> net = XdynNet(MLP, module__in_features=2, module__out_features=1,
    ...               module__hidden=32, lr=1e-2, max_epochs=30, random_state=0)
    >>> net = net.fit(X, y)
    >>> bool(net.history[-1, "train_loss"] < 0.5 * net.history[0, "train_loss"])
    True
    >>> net.predict(X).shape, net.predict(X).dtype
    ((256, 1), dtype('float32'))

    A self-supervised objective: no target (``y=None``); the loss compares the
    output with the input itself.

    >>> import torch
    >>> class Autoencoder(XdynNet):
    ...     def get_loss(self, y_pred, y_true, X=None, training=False):
    ...         return torch.mean((y_pred - X) ** 2)
    >>> ae = Autoencoder(MLP, module__in_features=2, module__out_features=2,
    ...                  lr=1e-2, max_epochs=20, random_state=0).fit(X)
    >>> bool(ae.history[-1, "train_loss"] < ae.history[0, "train_loss"])
    True
    """

    def __init__(
        self,
        module,
        *args,
        criterion=torch.nn.MSELoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=128,
        device="auto",
        dtype="float32",
        random_state=None,
        progress=False,
        train_split=None,
        **kwargs,
    ):
        if args:
            raise TypeError(
                f"{type(self).__name__} takes `module` as its only positional argument; "
                "pass the others by keyword (criterion=..., lr=..., max_epochs=...)"
            )
        # a library net is quiet unless asked (progress=True or verbose=1), and
        # shuffles its training batches (from the seeded per-epoch stream)
        kwargs.setdefault("verbose", 0)
        kwargs.setdefault("iterator_train__shuffle", True)
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            device=device,
            train_split=train_split,
            **kwargs,
        )
        self.dtype = dtype
        self.random_state = random_state
        self.progress = progress

    # --- device ----------------------------------------------------------
    # skorch reads ``self.device`` wherever it moves data; the parameter must
    # keep the value the user gave ("auto"), so that clone/get_params/pickle
    # carry "auto" to the next machine. Entry points swap the resolved device
    # in for their duration and put the parameter back afterwards.
    @contextlib.contextmanager
    def _resolved_device(self):
        state = vars(self)
        if "_device_param_" in state:  # already inside an entry point
            yield
            return
        requested = state.get("device", "auto")
        resolved = resolve_device(requested)
        state["_device_param_"] = requested
        state["device"] = str(resolved)
        state["device_"] = resolved
        try:
            yield
        finally:
            state["device"] = state.pop("_device_param_")

    @_on_resolved_device
    def initialize(self):
        """Resolve device, dtype and seed; build module, criterion, optimizer."""
        self.dtype_ = resolve_dtype(self.dtype)
        if not self.dtype_.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype, got {self.dtype!r}")
        self.seed_ = int_seed(self.random_state)
        return super().initialize()

    # set_params(module__*) on an initialized net rebuilds the module outside
    # any entry point above
    @_on_resolved_device
    def _initialize_module(self, *args, **kwargs):
        return super()._initialize_module(*args, **kwargs)

    @_on_resolved_device
    def _initialize_criterion(self, *args, **kwargs):
        return super()._initialize_criterion(*args, **kwargs)

    @_on_resolved_device
    def fit(self, X, y=None, **fit_params):
        return super().fit(X, y, **fit_params)

    @_on_resolved_device
    def partial_fit(self, X, y=None, classes=None, **fit_params):
        try:
            super().partial_fit(X, y, classes=classes, **fit_params)
        except BaseException:
            # skorch skips on_train_end when the fit raises: close the progress bar here
            for _, cb in getattr(self, "callbacks_", ()):
                if isinstance(cb, EpochProgressBar):
                    cb.on_train_end(self)
            raise
        # the last optimizer step comes after the last loss FiniteLoss saw: check what it
        # left, once, after every on_train_end (keep_best restores its best epoch there)
        # the forward's parameters, as skorch's fit_loop passes them (not its routing tag)
        forward_params = {k: v for k, v in fit_params.items() if k != "_routing_method"}
        for _, cb in self.callbacks_:
            if isinstance(cb, FiniteLoss):
                with torch.random.fork_rng(devices=_cuda_devices()), self._threads():
                    cb.check_last_step(self, **forward_params)
        return self

    @_on_resolved_device
    def infer(self, x, **fit_params):
        return super().infer(self._cast(x), **fit_params)

    @_on_resolved_device
    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = self._cast(y_true)
        if isinstance(getattr(self, "criterion_", None), _ELEMENTWISE_LOSSES) and \
                isinstance(y_pred, torch.Tensor) and isinstance(y_true, (torch.Tensor, np.ndarray)):
            y_true = _match_target(y_pred, y_true)
        return super().get_loss(y_pred, y_true, X=X, training=training)

    @_on_resolved_device
    def load_params(self, *args, **kwargs):
        return super().load_params(*args, **kwargs)

    def forward_iter(self, X, training=False, device="cpu"):
        with self._resolved_device():
            if device is None or (isinstance(device, str) and device == "auto"):
                device = self.device
            # outputs in a dtype numpy lacks (bfloat16) come out as float32, so that
            # predict can return numpy arrays
            widen = _numpy_dtype(getattr(self, "dtype_", torch.float32)) is None
            with self._threads():
                for out in super().forward_iter(X, training=training, device=device):
                    yield _cast(out, torch.float32, np.float32) if widen else out

    def __getstate__(self):
        state = super().__getstate__()
        if "_device_param_" in state:  # pickled mid-fit (a Checkpoint with f_pickle)
            state["device"] = state.pop("_device_param_")
        return state

    def __setstate__(self, state):
        requested = state.get("device", "auto")
        if requested is None or (isinstance(requested, str) and requested == "auto"):
            # tensors saved on a GPU map onto this machine's device
            state = dict(state)
            resolved = resolve_device("auto")
            state["device"] = str(resolved)
            super().__setstate__(state)
            vars(self)["device"] = requested
        else:
            # an explicit device this machine lacks: skorch maps to CPU and warns
            super().__setstate__(state)
            resolved = torch.device(self.device)
        if "device_" in vars(self):
            vars(self)["device_"] = resolved

    # --- dtype -----------------------------------------------------------
    def _cast(self, data, device=None):
        dtype = getattr(self, "dtype_", None) or resolve_dtype(self.dtype)
        return _cast(data, dtype, _numpy_dtype(dtype), device)

    def get_dataset(self, X, y=None):
        return super().get_dataset(self._cast(X), None if y is None else self._cast(y))

    def _batch_on_device(self, batch):
        # get_loss / train_step overrides see tensors of dtype_ on device_
        return self._cast(batch, device=self.device_)

    @_on_resolved_device
    def train_step_single(self, batch, **fit_params):
        return super().train_step_single(self._batch_on_device(batch), **fit_params)

    @_on_resolved_device
    def validation_step(self, batch, **fit_params):
        return super().validation_step(self._batch_on_device(batch), **fit_params)

    @_on_resolved_device
    def evaluation_step(self, batch, training=False):
        return super().evaluation_step(self._batch_on_device(batch), training=training)

    def initialize_module(self):
        seed = getattr(self, "seed_", None)
        if seed is None:
            super().initialize_module()
        else:
            with _seeded_torch(_derived_seed(seed, _INIT_STREAM)):
                super().initialize_module()
        for name in self._modules:
            getattr(self, name + "_").to(self.dtype_)
        return self

    def initialize_criterion(self):
        super().initialize_criterion()
        for name in self._criteria:
            getattr(self, name + "_").to(self.dtype_)
        return self

    # --- seeding ---------------------------------------------------------
    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        seed = getattr(self, "seed_", None)
        if seed is None or iterator is None:
            with self._threads():
                return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        # the epoch number counts loaded history too, so a resumed run draws
        # epoch k's shuffle and dropout from the same stream as an uninterrupted one;
        # validation has a stream of its own (a module that draws in eval mode, and
        # early stopping on its loss, are then reproducible too)
        epoch = len(self.history)
        stream = _EPOCH_STREAM if training else _VALID_STREAM
        with _seeded_torch(_derived_seed(seed, stream, epoch)), self._threads():
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    # True in subclasses whose weights act at every grid point, site or member of a
    # sample (convolutions, point decoders): weights x batch understates their work, and
    # they keep the process's threads (one inside joblib's and dask's workers)
    _keeps_process_threads = False

    def _threads(self):
        """One torch thread for small batches on a CPU (see ``_SMALL_BATCH_WORK``)."""
        if self._keeps_process_threads or \
                getattr(self, "device_", torch.device("cpu")).type != "cpu":
            return contextlib.nullcontext()
        n_params = sum(
            p.numel() for name in self._modules for p in getattr(self, name + "_").parameters()
        )
        batch = self.batch_size if self.batch_size and self.batch_size > 0 else 1024
        return threads_for(n_params * batch, limit=_SMALL_BATCH_WORK)

    # --- callbacks -------------------------------------------------------
    @property
    def _default_callbacks(self):
        callbacks = list(super()._default_callbacks)
        # a NaN loss leaves NaN weights: a diverged fit must not come back looking fitted
        callbacks.append(("finite_loss", FiniteLoss()))
        if getattr(self, "progress", False):
            callbacks.append(("progress", EpochProgressBar()))
        return callbacks

