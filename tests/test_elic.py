"""ELIC port: parity with compressai 1.2.8 Elic2022Chandelier (random weights, eval mode, update()d),
converted through Chandelier's flat checkpoint format, on a real 256x256 Kodak crop."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from codec_checks import check_real_bitstream  # noqa: E402
from elic_reference import chandelier_state_dict, kodak_crop, reference_model  # noqa: E402

from robustjax.defenses import elic  # noqa: E402
from robustjax.porting import CheckpointMismatchError  # noqa: E402

pytestmark = pytest.mark.slow  # real weights / data: parity with the reference


@pytest.fixture(scope="module")
def pair(data_dir):
    net = reference_model(seed=0)
    x = kodak_crop(data_dir)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    out = net(xt)
    target = torch.from_numpy(x).permute(0, 3, 1, 2)
    ((out["x_hat"] - target) ** 2).sum().backward()
    ref = {
        "x_hat": out["x_hat"].detach().numpy().transpose(0, 2, 3, 1),
        "y": out["likelihoods"]["y"].detach().numpy().transpose(0, 2, 3, 1),
        "z": out["likelihoods"]["z"].detach().numpy().transpose(0, 2, 3, 1),
        "bpp": float(sum(torch.log(v.detach()).sum() for v in out["likelihoods"].values()) / (-np.log(2) * 256 * 256)),
        "grad": xt.grad.numpy().transpose(0, 2, 3, 1),
    }
    model = elic.load_state_dict(chandelier_state_dict(net, eb_names="1.1.5", wrap=True))
    return net, model, x, ref


@pytest.fixture(scope="module")
def ours(pair):
    _, model, x, _ = pair
    from flax import nnx

    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, x):
        target = jax.lax.stop_gradient(x)  # as the torch side: the target is a constant

        def loss(x):
            out = elic.forward(nnx.merge(graphdef, state), x)
            return jnp.sum((out["x_hat"] - target) ** 2), out

        (_, out), g = jax.value_and_grad(loss, has_aux=True)(x)
        return out, g

    out, g = run(state, jnp.asarray(x))
    return jax.tree.map(np.asarray, out), np.asarray(g)


def test_reconstruction_matches_compressai(pair, ours):
    *_, ref = pair
    out, _ = ours
    assert np.abs(out["x_hat"] - ref["x_hat"]).max() <= 1e-4
    assert np.std(ref["x_hat"]) > 0.05  # a non-trivial image came out


@pytest.mark.parametrize("name", ["y", "z"])
def test_likelihoods_match_compressai(pair, ours, name):
    *_, ref = pair
    out, _ = ours
    got, want = out["likelihoods"][name], ref[name]
    assert got.shape == want.shape
    assert np.max(np.abs(got - want) / want) <= 1e-4
    assert np.median(want) < 0.9  # rounding matters: latents span several quantisation bins


def test_bpp_matches_compressai(pair, ours):
    *_, ref = pair
    out, _ = ours
    assert abs(float(out["bpp"][0]) - ref["bpp"]) / ref["bpp"] <= 1e-3


def test_straight_through_input_gradient_matches_autograd(pair, ours):
    *_, ref = pair
    _, g = ours
    a, b = g.ravel(), ref["grad"].ravel()
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert cos >= 0.999, cos


def test_layouts_all_convert_to_the_same_flat_dict(pair):
    net = pair[0]
    base = elic.chandelier_flat(chandelier_state_dict(net, eb_names="1.1.5"))
    for sd in (chandelier_state_dict(net, eb_names="1.2.8"), chandelier_state_dict(net, eb_names="1.2.8", wrap=True),
               {k: v.numpy() for k, v in net.state_dict().items()}):
        flat = elic.chandelier_flat(sd)
        assert sorted(flat) == sorted(base)
        assert all(np.array_equal(flat[k], base[k]) for k in base)


def test_foreign_state_dict_says_what_it_expected(pair):
    with pytest.raises(CheckpointMismatchError, match="not an ELIC checkpoint.*g_a.0.weight"):
        elic.chandelier_flat({"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)})
    sd = chandelier_state_dict(pair[0])
    del sd["ParamAggregation.4.4.bias"]
    sd["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(CheckpointMismatchError, match="extra.weight") as err:
        elic.load_state_dict(sd)
    assert "ParamAggregation.4.layers.4.bias" in str(err.value)


def test_real_bitstream_roundtrip_and_size(pair, ours):
    from robustjax.defenses.elic.codec import ElicCodec

    _, model, x, _ = pair
    out, _ = ours
    check_real_bitstream(ElicCodec(model), x, out)
