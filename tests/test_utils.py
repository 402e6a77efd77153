"""xdyn.utils: seeds and torch generators read random_state as scikit-learn does."""

import numpy as np
import pytest

from xdyn.utils import int_seed, torch_generator


def test_int_seed_keeps_ints_and_none_and_draws_from_instances():
    assert int_seed(7) == int_seed(np.int64(7)) == 7 and int_seed(None) is None
    rs = np.random.RandomState(0)
    first, second = int_seed(rs), int_seed(rs)
    assert first != second  # an instance advances
    assert first == np.random.RandomState(0).randint(2**31 - 1)
    assert int_seed(np.random.default_rng(1)) == np.random.default_rng(1).integers(2**31 - 1)
    with pytest.raises(ValueError, match=">= 0"):
        int_seed(-1)
    for bad in (True, 1.5, "0"):
        with pytest.raises(TypeError, match="random_state must be"):
            int_seed(bad)


def test_torch_generator_repeats_for_ints_and_draws_anew_otherwise():
    assert torch_generator(3).initial_seed() == torch_generator(3).initial_seed() == 3
    assert torch_generator(3, seed_from_int=lambda s: s + 10).initial_seed() == 13
    rs = np.random.RandomState(0)
    assert torch_generator(rs).initial_seed() != torch_generator(rs).initial_seed()
    assert torch_generator(None).initial_seed() != torch_generator(None).initial_seed()


def test_net_seed_is_the_same_seed():
    import torch

    from xdyn.nn import XdynNet

    net = XdynNet(torch.nn.Linear, module__in_features=2, module__out_features=1,
                  criterion=torch.nn.MSELoss, max_epochs=1, random_state=np.random.RandomState(4),
                  device="cpu").initialize()
    assert net.seed_ == np.random.RandomState(4).randint(2**31 - 1)
    with pytest.raises(ValueError, match=">= 0"):
        XdynNet(torch.nn.Linear, module__in_features=2, module__out_features=1,
                random_state=-2, device="cpu").initialize()
