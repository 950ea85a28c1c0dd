import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import plots, widgets  # noqa: E402
from course_lib.train import History  # noqa: E402


def test_image_grid_places_each_image():
    imgs = torch.stack([torch.full((1, 2, 3), float(i) / 10) for i in range(5)])
    g = plots.image_grid(imgs, nrow=3, pad=1)
    assert g.shape == (2 * (2 + 1) + 1, 3 * (3 + 1) + 1)
    # image i sits at row i // 3, column i % 3
    for i in range(5):
        r, c = divmod(i, 3)
        block = g[1 + r * 3: 1 + r * 3 + 2, 1 + c * 4: 1 + c * 4 + 3]
        assert np.allclose(block, i / 10)
    rgb = plots.image_grid(torch.rand(4, 3, 5, 5))
    assert rgb.shape[-1] == 3
    with pytest.raises(ValueError, match="N x C x H x W"):
        plots.image_grid(torch.rand(5, 5))


def test_figures_have_titles_and_labels():
    ax = plots.show_reconstructions(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8))
    assert ax.get_title() and not ax.get_xticks().size
    ax = plots.latent_scatter(torch.randn(50, 2), torch.randint(0, 10, (50,)), title="codes")
    assert ax.get_title() == "codes" and ax.get_xlabel() == "$z_1$"
    h = History(train={"loss": [3.0, 2.0], "kl": [1.0, 1.5]}, val={"loss": [3.5, 2.5]}, epoch_seconds=[1, 1])
    ax = plots.loss_curves(h)
    assert len(ax.get_lines()) == 3 and ax.get_xlabel() == "epoch" and "nats" in ax.get_ylabel()
    plt.close("all")


def test_decode_grid_orders_rows_and_columns():
    seen = []

    def decode(z):
        seen.append(z.clone())
        return torch.zeros(len(z), 1, 2, 2)

    plots.decode_grid(decode, extent=1.0, n=3)
    z = seen[0]
    assert z.shape == (9, 2)
    assert z[0].tolist() == [-1.0, 1.0] and z[2].tolist() == [1.0, 1.0] and z[8].tolist() == [1.0, -1.0]
    plt.close("all")


def test_decode_point_and_widgets_without_a_frontend():
    w_true = torch.randn(2, 16)

    def generate(z):
        return torch.sigmoid(z @ w_true).reshape(len(z), 1, 4, 4)

    img = widgets.decode_point(generate, (0.5, -1.0))
    assert img.shape == (1, 4, 4)
    assert torch.allclose(img, generate(torch.tensor([[0.5, -1.0]]))[0])

    explorer = widgets.latent_plane_explorer(generate, torch.randn(20, 2), torch.randint(0, 10, (20,)))
    names = [c.description for c in explorer.children[:2]]
    assert names == ["z1", "z2"]
    explorer.children[0].value = 1.5  # moving a slider re-renders without error
    sl = widgets.latent_sliders(lambda z: torch.sigmoid(z[:, :16]).reshape(len(z), 1, 4, 4), latent_dim=20)
    grid, out = sl.children
    assert [c.description for c in grid.children] == [f"z{i}" for i in range(1, 21)]  # every dimension, beside the image
    assert grid.layout.grid_template_columns.startswith("repeat(2,")
    sl.controls["z20"].value = 1.0  # the last dimension re-renders without error
    plt.close("all")


def test_side_by_side_figures_put_each_panel_where_it_says():
    """The helpers that keep the lessons' figure cells short (one line on a RISE slide)."""
    from types import SimpleNamespace

    from course_lib.figures import autoencoders, cvae, vae

    labels = torch.randint(0, 10, (40,))
    data = SimpleNamespace(labels=labels, classes=[str(i) for i in range(10)])
    a, b = torch.randn(40, 2), torch.randn(40, 2) + 5
    fig, axes = plots.latent_scatters({"first": a, "second": b}, labels)
    assert [ax.get_title() for ax in axes] == ["first", "second"]
    assert np.allclose(axes[1].collections[0].get_offsets(), b.numpy())      # each panel its own codes
    fig = autoencoders.code_planes({"PCA": (a, 1.5), "AE": (b, 0.25)}, data)
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["PCA (test MSE 1.50)", "AE (test MSE 0.25)"]
    calls = []

    def generate(z, y):                       # records the class each grid is decoded with
        calls.append((len(z), sorted(set(y.tolist()))))
        return torch.zeros(len(z), 1, 4, 4)

    fig, axes = cvae.class_grids(generate, (2, 7), torch.linspace(-1, 1, 3))
    assert calls == [(9, [2]), (9, [7])] and [ax.get_title() for ax in axes] == [
        "y = 2, z on a 3 x 3 grid", "y = 7, z on a 3 x 3 grid"]
    seen = []
    fig, axes = vae.codes_and_decoder_figure(a, data, lambda z: seen.append(z) or torch.zeros(len(z), 1, 4, 4),
                                             torch.tensor([-1.0, 1.0]))
    assert len(seen[0]) == 4 and set(seen[0].flatten().tolist()) == {-1.0, 1.0}
    x = torch.rand(3, 1, 4, 4)
    fig, axes = vae.beta_sweep_figure(x, {1: x, 4: 1 - x}, {1: x, 4: x}, [1, 4])
    assert axes[0].images[0].get_array().shape[0] == 3 * (4 + 1) + 1      # input row + one row per beta
    plt.close("all")
