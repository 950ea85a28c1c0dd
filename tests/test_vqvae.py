"""Tests of the VQ-VAE (course_lib.models.vqvae): every formula lesson 7 teaches.

Nearest-code assignment against brute force; the straight-through gradient; which parameters each
loss term moves; the EMA update as a running mean of the assigned vectors; dead-code restarts;
perplexity; the model's loss terms, index round trip and errors.
"""
import math

import pytest
import torch

from course_lib.models.vqvae import (VQVAE, EMAVectorQuantizer, VectorQuantizer, code_histogram, codebook_loss,
                                     commitment_loss, lesson7_config, nearest_codes, perplexity, straight_through)



def _grid(b=3, d=4, h=5, w=6, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, h, w, generator=g).requires_grad_(requires_grad)


# --- nearest code ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,d", [(1, 3), (7, 2), (64, 16)])
def test_nearest_code_matches_brute_force(k, d):
    g = torch.Generator().manual_seed(k + d)
    z = 2 * torch.randn(500, d, generator=g, dtype=torch.float64)
    codes = torch.randn(k, d, generator=g, dtype=torch.float64)
    brute = torch.tensor([min(range(k), key=lambda j: float(((zi - codes[j]) ** 2).sum())) for zi in z])
    assert torch.equal(nearest_codes(z, codes), brute)


def test_quantizer_indices_and_output_are_the_nearest_codes():
    vq = VectorQuantizer(num_codes=10, code_dim=4)
    with torch.no_grad():
        vq.codebook.normal_()
    vq.eval()
    z_e = _grid()
    quantized, vq_loss, indices = vq(z_e)
    assert indices.shape == (3, 5, 6) and indices.dtype == torch.int64
    assert quantized.shape == z_e.shape and vq_loss.shape == ()
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    dist = torch.cdist(vectors, vq.codebook.detach())
    assert torch.equal(indices.reshape(-1), dist.argmin(1))
    assert torch.allclose(quantized.permute(0, 2, 3, 1).reshape(-1, 4), vq.codebook[indices.reshape(-1)], atol=1e-6)
    assert torch.allclose(vq.lookup(indices), quantized, atol=1e-6)


# --- straight-through and the two vq terms ---------------------------------------------------------------

def test_straight_through_gradient_reaches_z_e_unchanged():
    vq = VectorQuantizer(num_codes=8, code_dim=4)
    with torch.no_grad():
        vq.codebook.normal_()
    z_e = _grid(requires_grad=True)
    quantized, _, _ = vq(z_e)
    upstream = torch.randn_like(quantized)          # any gradient arriving from the decoder
    (grad_z,) = torch.autograd.grad((quantized * upstream).sum(), z_e)
    assert torch.equal(grad_z, upstream), "d quantized / d z_e must be the identity"
    # and the forward value is the code, not z_e
    assert torch.allclose(straight_through(z_e, quantized.detach()), quantized)
    assert not torch.allclose(quantized, z_e)


def test_codebook_term_moves_only_the_codebook_and_commitment_only_the_encoder():
    vq = VectorQuantizer(num_codes=8, code_dim=4, beta=0.25)
    with torch.no_grad():
        vq.codebook.normal_()
    z_e = _grid(requires_grad=True)
    out = vq.quantize(z_e)
    g_cb = torch.autograd.grad(out.codebook, [z_e, vq.codebook], allow_unused=True, retain_graph=True)
    g_cm = torch.autograd.grad(out.commitment, [z_e, vq.codebook], allow_unused=True, retain_graph=True)
    assert g_cb[0] is None or g_cb[0].abs().max() == 0, "the codebook term must not move the encoder"
    assert g_cb[1] is not None and g_cb[1].abs().max() > 0
    assert g_cm[0] is not None and g_cm[0].abs().max() > 0
    assert g_cm[1] is None or g_cm[1].abs().max() == 0, "the commitment term must not move the codebook"
    # values: both equal ||z_e - e||^2 per example, averaged over the batch; vq_loss = codebook + beta commitment
    z_q = vq.lookup(out.indices)
    per_example = ((z_e - z_q) ** 2).sum((1, 2, 3))
    assert torch.allclose(out.codebook, per_example.mean()) and torch.allclose(out.commitment, per_example.mean())
    assert torch.allclose(out.vq_loss, out.codebook + 0.25 * out.commitment)
    # the gradients themselves: d/de_k sum ||sg z - e_k||^2 = 2 sum (e_k - z), d/dz ||z - sg e||^2 = 2 (z - e)
    assert torch.allclose(g_cm[0], 2 * (z_e - z_q).detach() / len(z_e), atol=1e-6)
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    idx = out.indices.reshape(-1)
    want = torch.zeros_like(vq.codebook).index_add_(0, idx, 2 * (vq.codebook.detach()[idx] - flat)) / len(z_e)
    assert torch.allclose(g_cb[1], want, atol=1e-5)
    assert torch.allclose(codebook_loss(z_e, z_q), per_example) and torch.allclose(commitment_loss(z_e, z_q), per_example)


def test_ema_quantizer_loss_is_the_weighted_commitment_only():
    vq = EMAVectorQuantizer(8, 4, beta=0.5)
    z_e = _grid(requires_grad=True)
    out = vq.quantize(z_e)
    assert torch.allclose(out.vq_loss, 0.5 * out.commitment)
    assert not any(p.requires_grad for p in vq.parameters()), "the EMA codebook is not a trained parameter"


# --- EMA ----------------------------------------------------------------------------------------------

def test_ema_update_is_the_running_mean_of_the_assigned_vectors():
    k, d, gamma = 5, 3, 0.9
    vq = EMAVectorQuantizer(k, d, decay=gamma, eps=0.0)
    g = torch.Generator().manual_seed(0)
    e0 = vq.codebook.clone()
    assert torch.equal(vq.cluster_size, torch.ones(k)), "cluster sizes start at 1, not 0"
    flat = torch.randn(40, d, generator=g)
    idx = nearest_codes(flat, e0)
    vq.ema_update(flat, idx)
    n = torch.bincount(idx, minlength=k).float()
    s = torch.zeros(k, d).index_add_(0, idx, flat)
    want_N = gamma * 1.0 + (1 - gamma) * n
    want_e = (gamma * e0 + (1 - gamma) * s) / want_N[:, None]
    assert torch.allclose(vq.cluster_size, want_N) and torch.allclose(vq.codebook, want_e, atol=1e-6)
    # decay 0: each code becomes the mean of the vectors assigned to it in this batch
    vq0 = EMAVectorQuantizer(k, d, decay=0.0, eps=0.0)
    idx0 = nearest_codes(flat, vq0.codebook)
    vq0.ema_update(flat, idx0)
    for j in idx0.unique():
        assert torch.allclose(vq0.codebook[j], flat[idx0 == j].mean(0), atol=1e-6)
    # many steps with the same assignments: the running means converge to the assigned vectors' means
    for _ in range(300):
        vq.ema_update(flat, idx)
    for j in idx.unique():
        assert torch.allclose(vq.codebook[j], flat[idx == j].mean(0), atol=1e-3)


def test_ema_training_step_uses_the_current_batch_assignments():
    vq = EMAVectorQuantizer(6, 2, decay=0.0, eps=0.0)
    z_e = _grid(b=2, d=2, h=4, w=4, seed=3)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    before = nearest_codes(flat, vq.codebook.clone())     # assignments with the codebook the batch saw
    vq.train()
    _, _, indices = vq(z_e)
    assert torch.equal(indices.reshape(-1), before)
    for j in before.unique():
        assert torch.allclose(vq.codebook[j], flat[before == j].mean(0), atol=1e-6)


def test_laplace_smoothing_keeps_unused_codes_finite():
    vq = EMAVectorQuantizer(4, 2, decay=0.5, eps=1e-5)
    flat = torch.zeros(10, 2) + 3.0
    idx = torch.zeros(10, dtype=torch.long)               # all vectors on code 0: the others get n_k = 0
    for _ in range(60):
        vq.ema_update(flat, idx)
    assert torch.isfinite(vq.codebook).all()
    total = vq.cluster_size.sum()
    assert total == pytest.approx(0.5**60 * 4 + (1 - 0.5**60) * 10, rel=1e-5)
    assert torch.allclose(vq.codebook[0], torch.full((2,), 3.0), atol=1e-3)


# --- dead codes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [VectorQuantizer, EMAVectorQuantizer])
def test_a_dead_code_is_restarted_from_encoder_outputs(cls):
    torch.manual_seed(0)
    vq = cls(4, 2, restart_after=3)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [100.0, 100.0]]))
    if cls is EMAVectorQuantizer:
        vq.code_sum.copy_(vq.codebook)
        vq.decay = 0.999          # the codes barely move: only the restart can rescue code 3
    z_e = 0.05 * _grid(b=4, d=2, h=3, w=3, seed=5)
    vq.train()
    for step in range(1, 4):
        _, _, idx = vq(z_e)
        if step < 3:
            assert not (idx == 3).any() and vq.codebook[3, 0] > 50, "code 3 is far from every z_e: unused"
    assert int(vq.restarts) >= 1
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    dist = torch.cdist(vq.codebook[3:4].detach(), flat)
    assert dist.min() < 1e-5, "the dead code is moved onto one of the encoder outputs of the batch"
    assert int(vq.unused_steps[3]) == 0
    # without the remedy it stays dead
    vq2 = cls(4, 2, restart_after=None)
    with torch.no_grad():
        vq2.codebook.copy_(torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [100.0, 100.0]]))
    if cls is EMAVectorQuantizer:
        vq2.code_sum.copy_(vq2.codebook)
    vq2.train()
    for _ in range(5):
        vq2(z_e)
    assert int(vq2.unused_steps[3]) == 5 and int(vq2.restarts) == 0


def test_eval_mode_changes_nothing():
    vq = EMAVectorQuantizer(4, 2, restart_after=1)
    state = {k: v.clone() for k, v in vq.state_dict().items()}
    vq.eval()
    vq(100 + _grid(d=2))
    for k, v in vq.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed in eval mode"


# --- perplexity ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 2, 16, 512])
def test_perplexity_is_k_for_uniform_usage_and_1_for_one_code(k):
    uniform = torch.arange(k).repeat(3).reshape(3, k, 1)
    assert perplexity(uniform, k).item() == pytest.approx(k, rel=1e-5)
    single = torch.full((4, 7, 7), k - 1)
    assert perplexity(single, k).item() == pytest.approx(1.0, abs=1e-6)


def test_perplexity_is_exp_entropy_and_bounded_by_the_batch():
    idx = torch.tensor([0, 0, 1, 2])
    p = torch.tensor([0.5, 0.25, 0.25])
    assert perplexity(idx, 8).item() == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-6)
    g = torch.Generator().manual_seed(0)
    many = torch.randint(0, 64, (10_000,), generator=g)
    assert perplexity(many[:20], 64) <= 20 < perplexity(many, 64) <= 64
    assert torch.equal(code_histogram(idx, 4), torch.tensor([2, 1, 1, 0]))


# --- the model ----------------------------------------------------------------------------------------

def test_vqvae_loss_terms_and_index_round_trip(one_thread):
    torch.manual_seed(0)
    model = VQVAE((1, 28, 28), num_codes=16, code_dim=8, hidden=16, ema=False, restart_after=None)
    x = (torch.rand(5, 1, 28, 28) < 0.3).float()
    model.eval()
    terms = model.loss(x)
    assert {"loss", "recon", "codebook", "commitment", "kl", "neg_elbo", "perplexity"} <= set(terms)
    assert all(v.shape == () for v in terms.values())
    assert terms["kl"].item() == pytest.approx(49 * math.log(16)) and model.rate_bits == pytest.approx(49 * 4)
    assert torch.allclose(terms["loss"], terms["recon"] + terms["codebook"] + 0.25 * terms["commitment"], rtol=1e-5)
    idx = model.encode_indices(x)
    assert idx.shape == (5, 7, 7) and idx.dtype == torch.int64 and 0 <= idx.min() and idx.max() < 16
    z_q = model.quantizer.lookup(idx)
    recon = torch.nn.functional.binary_cross_entropy_with_logits(model.decoder(z_q), x, reduction="none").sum((1, 2, 3))
    assert torch.allclose(terms["recon"], recon.mean(), rtol=1e-5)
    assert torch.allclose(model.decode_indices(idx), torch.sigmoid(model.decoder(z_q)), atol=1e-6)
    assert torch.allclose(model.reconstruct(x), model.decode_indices(idx))


def test_vqvae_training_lowers_the_loss_and_keeps_codes_alive(one_thread):
    from course_lib.data import binarize_static, load_dataset
    from course_lib.train import evaluate_terms, fit

    data = load_dataset("mnist5k", "train").take(800).map(binarize_static)
    torch.manual_seed(0)
    model = VQVAE(data.shape, num_codes=16, code_dim=8, hidden=16, ema=True, decay=0.9, restart_after=10)
    before = evaluate_terms(model, data)
    fit(model, data, epochs=3, batch_size=40, lr=5e-3, progress=False)
    after = evaluate_terms(model, data)
    assert after["recon"] < 0.4 * before["recon"]
    ppl = perplexity(model.encode_indices(data.images), 16)
    assert ppl > 16 / 4


def test_errors_say_what_to_do():
    vq = VectorQuantizer(4, 3)
    with pytest.raises(ValueError, match="code_dim=3"):
        vq(torch.zeros(2, 5, 2, 2))
    with pytest.raises(TypeError, match="integers"):
        vq.lookup(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="0..3"):
        vq.lookup(torch.full((1, 2, 2), 4))
    model = VQVAE((1, 28, 28), num_codes=4, code_dim=3, hidden=8)
    with pytest.raises(ValueError, match="7, 7"):
        model.decode_indices(torch.zeros(7, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="multiples of 4"):
        VQVAE((1, 30, 30))
    with pytest.raises(ValueError, match="decay"):
        EMAVectorQuantizer(4, 3, decay=1.0)


def test_lesson7_config_quick_sizes():
    cfg = lesson7_config()
    assert cfg["model"]["num_codes"] == 32 and cfg["model"]["ema"] and cfg["model"]["restart_after"]


def test_commitment_weight_keeps_beta_as_its_older_name():
    for cls in (VectorQuantizer, EMAVectorQuantizer):
        assert cls(4, 3, commitment_weight=0.7).commitment_weight == 0.7
        old = cls(4, 3, beta=0.7)
        assert old.commitment_weight == 0.7 and old.beta == 0.7
    assert VQVAE((1, 28, 28), num_codes=4, code_dim=3, hidden=8, beta=0.5).quantizer.commitment_weight == 0.5
    assert VQVAE((1, 28, 28), num_codes=4, code_dim=3, hidden=8, commitment_weight=0.5).quantizer.beta == 0.5


# --- the lesson's callback and widget logic ------------------------------------------------------------

def test_watch_codes_logs_scale_changes_and_dead_codes(one_thread):
    from course_lib.models.vqvae import watch_codes
    from course_lib.train import History

    torch.manual_seed(0)
    model = VQVAE((1, 28, 28), num_codes=8, code_dim=4, hidden=8, ema=False, restart_after=None)
    probe = (torch.rand(6, 1, 28, 28) < 0.3).float()
    cb, hist = watch_codes(probe), History()
    cb(model, 1, hist)
    cb(model, 2, hist)                                    # nothing changed in between
    z = model.encode_latent(probe).detach()
    assert hist.train["z_norm"][-1] == pytest.approx(float(z.pow(2).sum((1, 2, 3)).mean()), rel=1e-5)
    assert math.isnan(hist.train["codes_changed"][0]) and hist.train["codes_changed"][1] == 0.0
    idx = model.encode_indices(probe)
    assert hist.train["dead_codes"][-1] == float((code_histogram(idx, 8) == 0).sum())
    with torch.no_grad():                                 # move every code far away but one: all positions switch
        model.quantizer.codebook.add_(1000.0)
        model.quantizer.codebook[5] = 0.0
    cb(model, 3, hist)
    assert hist.train["dead_codes"][-1] == 7 and hist.train["probe_perplexity"][-1] == pytest.approx(1.0)
    assert hist.train["codes_changed"][-1] == pytest.approx(float((idx != 5).float().mean()))


def test_edit_code_grid_and_code_patches():
    from course_lib.figures.vqvae import code_patches, edit_code_grid

    grid = torch.zeros(7, 7, dtype=torch.long)
    edited = edit_code_grid(grid, 2, 5, 9)
    assert edited[2, 5] == 9 and (edited != grid).sum() == 1 and grid.sum() == 0
    with pytest.raises(ValueError, match="outside"):
        edit_code_grid(grid, 7, 0, 1)
    # images whose cell (r, c) has value 10 r + c; code = 0 everywhere except code 1 at (3, 4)
    images = torch.zeros(1, 1, 28, 28)
    for r in range(7):
        for c in range(7):
            images[0, 0, 4 * r:4 * r + 4, 4 * c:4 * c + 4] = 10 * r + c
    indices = torch.zeros(1, 7, 7, dtype=torch.long)
    indices[0, 3, 4] = 1
    patches = code_patches(images, indices, num_codes=3, context=1)
    assert patches.shape == (3, 1, 12, 12)
    assert torch.equal(patches[1, 0, 4:8, 4:8], torch.full((4, 4), 34.0)), "the centre of the patch is the code's cell"
    assert torch.equal(patches[1, 0, 0:4, 0:4], torch.full((4, 4), 23.0)), "its upper-left neighbour cell"
    assert torch.equal(patches[2], torch.zeros(1, 12, 12)), "an unused code has a zero patch"


def test_code_grid_editor_builds_without_a_frontend():
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from course_lib.figures.vqvae import code_grid_editor

    model = VQVAE((1, 28, 28), num_codes=4, code_dim=3, hidden=8).eval()
    w = code_grid_editor(model, torch.zeros(7, 7, dtype=torch.long))
    assert [c.description for c in w.children[:3]] == ["row", "column", "code"]
