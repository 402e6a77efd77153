"""Episode encoders: shapes, the convolutional encoder's invariance, and bad sizes."""

import numpy as np
import pytest
import torch

from xdyn.nn.encoders import ConvEncoder, make_encoder


@pytest.mark.parametrize("kind", ["mlp", "gru", "lstm", "conv"])
def test_every_encoder_maps_a_window_to_one_code(kind):
    extra = {"n_channels": 2} if kind == "conv" else {}
    enc = make_encoder(kind, n_features=2 * 4 * 4, window=3, hidden_size=8, **extra)
    assert enc(torch.randn(5, 3, 32)).shape == (5, enc.out_features) == (5, 8)


def test_conv_encoder_is_periodic_and_reads_the_fields_in_their_layout():
    torch.manual_seed(0)
    enc = ConvEncoder(2 * 6 * 6, window=2, hidden_size=8, n_channels=2).double()
    x = torch.randn(4, 2, 2, 6, 6, dtype=torch.float64)
    code = enc(x.reshape(4, 2, 72))
    # any periodic shift of every field leaves the code unchanged ...
    for shift in ((1, 0), (0, 5), (3, 2)):
        moved = x.roll(shift, dims=(-2, -1)).reshape(4, 2, 72)
        torch.testing.assert_close(enc(moved), code)
    # ... a shift of one field against the other does not (channels are not mixed up)
    apart = torch.cat([x[:, :, :1], x[:, :, 1:].roll(1, dims=-1)], dim=2).reshape(4, 2, 72)
    assert not torch.allclose(enc(apart), code)
    # swapping the two fields changes the code too
    swapped = x.flip(2).reshape(4, 2, 72)
    assert not torch.allclose(enc(swapped), code)


def test_conv_encoder_refuses_fields_that_are_not_square():
    with pytest.raises(ValueError, match="not n_channels=2 square fields"):
        ConvEncoder(2 * 12, window=2, n_channels=2)
    with pytest.raises(ValueError, match="unknown"):
        make_encoder("transformer", 4, 2)
    assert np.isclose(ConvEncoder(9, window=1).side, 3)
