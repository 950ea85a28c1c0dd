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
