# %% [markdown] slideshow={"slide_type": "slide"}
# # Exercises, lesson 7: the VQ-VAE's loss, and reviving dead codes
#
# | exercise | what you write | points |
# |---|---|---|
# | (a) | `vq_loss(z_e, codebook, decoder_nll, weight)`: the three-term loss, each term moving only what it should | 5 |
# | (b) | `revive_codes(codebook, unused, vectors, patience)`: restart dead codes on the worst-quantized vectors | 3 |
#
# Replace each `raise NotImplementedError(...)` with your code, run the cell, then the **self-check** below it: its
# messages name the usual mistake when something is wrong. Graded cells run hidden tests when your work is
# collected: do not edit or delete them. Use `torch` operations only: `course_lib.models.vqvae` is not available
# to you here (a submission that calls it scores 0 on the exercise).
#
# Runs in a few seconds on a CPU.

# %% slideshow={"slide_type": "skip"}
import torch

from course_lib.tooling.checks import record
from course_lib.runtime import make_generator, seed_everything

seed_everything(0)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (a) The VQ-VAE loss, with the stop-gradients in the right places (5 points)
#
# Lesson 7 trained its VQ-VAE with `course_lib` and checked with autograd which parameters the codebook and
# commitment terms move. Now write the whole loss yourself. Inputs:
#
# - `z_e`: the encoder's output grid, shape `(B, D, H, W)` (one $D$-dimensional vector per grid position);
# - `codebook`: the $K$ codes, shape `(K, D)`;
# - `decoder_nll`: a function; `decoder_nll(z)` takes a grid `(B, D, H, W)` (what the decoder reads) and returns
#   $-\log p_\theta(x \mid z)$ for each example, shape `(B,)`;
# - `weight`: the commitment weight $\omega$ of lesson 7's eq. (3).
#
# Return a dict of four scalars, each in nats per example (summed over grid positions and code dimensions,
# averaged over the batch): `"recon"` (the decoder's term, at the **quantized** grid), `"codebook"`, `"commitment"`
# (not multiplied by $\omega$) and `"loss"` $=$ recon $+$ codebook $+\ \omega\,$commitment.
#
# **What the check looks at** (the goal): the values, and the gradients of each term. The reconstruction term
# must reach the encoder and the decoder, never the codes; the codebook term must move only the codes; the
# commitment term only the encoder.

# %%
def vq_loss(z_e, codebook, decoder_nll, weight):
    """The VQ-VAE loss terms (scalars, nats per example): {"loss", "recon", "codebook", "commitment"}."""
    ### BEGIN SOLUTION
    b, d, h, w = z_e.shape
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, d)
    chosen = torch.cdist(vectors.detach(), codebook.detach()).argmin(dim=1)
    z_q = codebook[chosen].reshape(b, h, w, d).permute(0, 3, 1, 2)
    recon = decoder_nll(z_e + (z_q - z_e).detach()).mean()
    codebook_term = (z_q - z_e.detach()).pow(2).sum((1, 2, 3)).mean()
    commitment = (z_e - z_q.detach()).pow(2).sum((1, 2, 3)).mean()
    return {"loss": recon + codebook_term + weight * commitment, "recon": recon, "codebook": codebook_term,
            "commitment": commitment}
    ### END SOLUTION


# %% [markdown]
# **Self-check (a)**: three codes in $D = 2$, a batch of two examples with two grid positions each, and a toy
# "decoder" whose NLL is the squared distance to a target grid. Each check below isolates one usual mistake.

# %%
def _case(weight=0.5):
    codes = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]], requires_grad=True)
    z = torch.tensor([[[[3.0, 1.0]], [[1.0, 3.0]]],            # example 0: vectors (3, 1) -> code 1, (1, 3) -> code 2
                      [[[0.5, 5.0]], [[0.5, 0.0]]]], requires_grad=True)  # example 1: (0.5, 0.5) -> 0, (5, 0) -> 1
    target = torch.tensor([[[[1.0, 2.0]], [[0.0, 1.0]]], [[[2.0, 1.0]], [[1.0, 0.0]]]])
    out = vq_loss(z, codes, lambda g: (g - target).pow(2).sum((1, 2, 3)), weight)
    return out, z, codes, target


def _grads(term, z, codes):
    """Gradients of one returned term w.r.t. (z_e, codebook); zeros where the term does not reach them."""
    if not torch.is_tensor(term) or not term.requires_grad:
        return torch.zeros_like(z), torch.zeros_like(codes)
    g = torch.autograd.grad(term, (z, codes), retain_graph=True, allow_unused=True)
    return tuple(torch.zeros_like(t) if gi is None else gi for gi, t in zip(g, (z, codes)))


_out, _z, _codes, _target = _case()
assert isinstance(_out, dict) and {"loss", "recon", "codebook", "commitment"} <= set(_out), \
    "return a dict with the keys 'loss', 'recon', 'codebook', 'commitment'"
assert all(torch.is_tensor(_out[k]) and _out[k].ndim == 0 for k in _out), \
    "every term is one number (0-dimensional tensor): sum over positions and dimensions, then average over the batch"
_zq = torch.tensor([[[[4.0, 0.0]], [[0.0, 4.0]]], [[[0.0, 4.0]], [[0.0, 0.0]]]])   # the nearest codes, laid out as z_e
assert torch.isclose(_out["codebook"].detach(), torch.tensor(2.75)), (
    f"codebook term {float(_out['codebook']):.4f}, expected 2.75 = mean over the batch of (2 + 2, 0.5 + 1): "
    + ("you averaged over positions or dimensions too (sum them, average only over the batch)"
       if float(_out["codebook"]) < 2.7 else "you summed over the batch too (average it)"
       if abs(float(_out["codebook"]) - 5.5) < 1e-3 else
       "is each vector compared with its NEAREST code, along the code dimension (axis 1 of z_e, axis 1 of the codebook)?"))
assert torch.isclose(_out["commitment"].detach(), torch.tensor(2.75)), \
    "the commitment term is the same distance as the codebook term (before the weight): 2.75 here; do not multiply it by the weight"
_recon_at_zq = (_zq - _target).pow(2).sum((1, 2, 3)).mean()
assert torch.isclose(_out["recon"].detach(), _recon_at_zq), (
    f"recon {float(_out['recon']):.3f}, expected {float(_recon_at_zq):.3f}: the decoder must read the QUANTIZED grid "
    "(the chosen codes), not z_e, and the per-example NLL is averaged over the batch")
assert torch.isclose(_out["loss"].detach(), _recon_at_zq + 2.75 + 0.5 * 2.75), \
    "loss = recon + codebook + weight * commitment: is the weight on the commitment term (not on the codebook term)?"

_gz, _gc = _grads(_out["codebook"], _z, _codes)
assert _gz.abs().max() == 0, "the codebook term moves z_e: detach z_e in it (sg[z_e]), so that only the codes move"
assert _gc.abs().max() > 0, "the codebook term gives the codes no gradient: detach z_e there, not the codes"
_want_gc = torch.tensor([[-0.5, -0.5], [0.0, -1.0], [-1.0, 1.0]])    # 2 (e_k - z_e) summed over its vectors, / B
assert torch.allclose(_gc, _want_gc), "the codebook term's gradient on the codes is wrong: 2 (e_k - z_e) / B per assigned vector"
_gz, _gc = _grads(_out["commitment"], _z, _codes)
assert _gc.abs().max() == 0, "the commitment term moves the codes: detach the codes in it (sg[e]), so that only z_e moves"
assert torch.allclose(_gz, _z.detach() - _zq), \
    "the commitment term's gradient on z_e should be 2 (z_e - e) / B (here z_e - e): detach the codes, not z_e"
_gz, _gc = _grads(_out["recon"], _z, _codes)
assert _gc.abs().max() == 0, ("the reconstruction term moves the codes: feed the decoder z_e + (z_q - z_e).detach() "
                              "(straight-through), not the codes themselves")
assert torch.allclose(_gz, _zq - _target), ("the reconstruction gradient at z_e should be the decoder's gradient at "
                                            "z_q, copied unchanged (straight-through): here (z_q - target)")
_gz, _gc = _grads(_out["loss"], _z, _codes)
assert torch.allclose(_gz, _zq - _target + 0.5 * (_z.detach() - _zq)) and torch.allclose(_gc, _want_gc), \
    "the total loss's gradients should be recon + weight * commitment on z_e, and the codebook term's on the codes"
_out0 = _case(weight=0.0)[0]
assert torch.isclose(_out0["loss"].detach(), _recon_at_zq + 2.75), "with weight 0 the commitment term must vanish from the loss"
_codes3 = 10 * torch.eye(4, 3)                                 # K = 4 codes in D = 3: 10 e_1, 10 e_2, 10 e_3 and 0
_zq3 = _codes3[torch.tensor([[1, 3], [0, 2]])].permute(0, 2, 1)[..., None]   # B = 2, D = 3, H = 2, W = 1
_z3 = _zq3 + torch.tensor([0.5, -1.0, 1.5])[None, :, None, None]            # each vector 3.5 from its code
_out3 = vq_loss(_z3, _codes3, lambda g: g.sum((1, 2, 3)), 1.0)
assert torch.isclose(_out3["codebook"], torch.tensor(7.0)) and torch.isclose(_out3["commitment"], torch.tensor(7.0)), (
    f"a (B=2, D=3, H=2, W=1) grid, every vector at squared distance 3.5 from its code: 2 x 3.5 = 7 per example, got "
    f"{float(_out3['codebook']):.3f}: keep the code dimension on axis 1 of z_e when you flatten the grid and when "
    "you lay the codes back out, and sum over axes 1, 2, 3 (not over the batch)")
assert torch.isclose(_out3["recon"], _zq3.sum((1, 2, 3)).mean()), \
    "the decoder must read the chosen codes laid out as z_e: (B, D, H, W)"
print("Self-check (a) passed.")

# %% grade={"exercise": "vq_loss", "points": 5, "forbidden": ["course_lib.models.vqvae"]}
### BEGIN HIDDEN TESTS
def _term_grads(term, z, codes):
    if not torch.is_tensor(term) or not term.requires_grad:
        return [torch.zeros_like(z), torch.zeros_like(codes)]
    g = torch.autograd.grad(term, (z, codes), retain_graph=True, allow_unused=True)
    return [torch.zeros_like(t) if gi is None else gi for gi, t in zip(g, (z, codes))]


_g = make_generator(71)
for _b, _d, _h, _w, _k, _weight in [(3, 4, 2, 3, 5, 0.25), (2, 8, 3, 3, 16, 1.5), (4, 2, 1, 2, 3, 0.0)]:
    _z = torch.randn(_b, _d, _h, _w, generator=_g, requires_grad=True)
    _cb = torch.randn(_k, _d, generator=_g, requires_grad=True)
    _tgt = torch.randn(_b, _d, _h, _w, generator=_g)
    _scale = torch.rand(_d, 1, 1, generator=_g) + 0.5
    _terms = vq_loss(_z, _cb, lambda g: (_scale * (g - _tgt) ** 2).sum((1, 2, 3)), _weight)
    _case_name = f"z_e {(_b, _d, _h, _w)}, K={_k}, weight={_weight}"
    record(f"vq_loss values, {_case_name}", [_terms[_t].detach() for _t in ("loss", "recon", "codebook", "commitment")],
           atol=1e-4, message="recon at the quantized grid, codebook and commitment distances summed over positions "
                              "and dimensions and averaged over the batch, loss = recon + codebook + weight * commitment")
    for _t, _hint in [("recon", "straight-through: the decoder's gradient reaches z_e unchanged and never the codes"),
                      ("codebook", "sg[z_e]: the codebook term moves the codes only"),
                      ("commitment", "sg[e]: the commitment term moves the encoder only"),
                      ("loss", "the weight multiplies the commitment term only")]:
        record(f"vq_loss gradients of {_t}, {_case_name}", _term_grads(_terms[_t], _z, _cb), atol=1e-4,
               message=_hint)
### END HIDDEN TESTS

# %% [markdown] slideshow={"slide_type": "slide"}
# ## (b) Reviving dead codes on the worst-quantized vectors (3 points)
#
# Lesson 7 restarted a code unused for `restart_after` training steps on a **random** encoder output of the batch.
# A better target: the encoder outputs that the codebook represents **worst**. Write
# `revive_codes(codebook, unused, vectors, patience)`:
#
# - `codebook` `(K, D)`; `unused` `(K,)` integers: for each code, the number of consecutive training steps,
#   **before this batch**, in which no vector chose it; `vectors` `(N, D)`: this batch's encoder outputs;
# - first bring `unused` up to date with this batch (a code chosen by at least one vector of the batch has been
#   unused for 0 steps); a code is **dead** when it has been unused for `patience` steps or more;
# - the dead codes, taken in increasing index order, move onto the batch vectors with the **largest** squared
#   distance to their nearest code (distances to the codebook as it was before any restart), largest first; a
#   revived code counts as used (0 steps). You may assume there are at least as many vectors as dead codes.
#
# Return `(new_codebook, new_unused)` without modifying the inputs.

# %%
def revive_codes(codebook, unused, vectors, patience):
    """Dead codes jump onto the worst-quantized vectors of the batch -> (new codebook (K, D), new unused (K,))."""
    ### BEGIN SOLUTION
    dist = torch.cdist(vectors, codebook).pow(2)
    nearest, chosen = dist.min(dim=1)
    used = torch.bincount(chosen, minlength=len(codebook)) > 0
    steps = torch.where(used, torch.zeros_like(unused), unused + 1)
    dead = (steps >= patience).nonzero().flatten()
    worst = nearest.argsort(descending=True)[:len(dead)]
    new_codebook = codebook.clone()
    new_codebook[dead] = vectors[worst]
    steps[dead] = 0
    return new_codebook, steps
    ### END SOLUTION


# %% [markdown]
# **Self-check (b)**: four codes in $D = 2$, patience 3. Each check isolates one usual mistake.

# %%
_cb = torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0], [-9.0, 0.0]])
_vec = torch.tensor([[0.5, 0.0], [4.0, 6.0], [0.0, 3.0], [1.0, 1.0], [6.0, 9.0]])  # choose codes 0, 1, 0, 0, 1
_unused = torch.tensor([7, 1, 2, 3])
_cb0, _unused0 = _cb.clone(), _unused.clone()
_res = revive_codes(_cb, _unused, _vec, 3)
assert isinstance(_res, tuple) and len(_res) == 2, "return (new_codebook, new_unused)"
_new_cb, _new_unused = _res
assert torch.equal(_cb, _cb0) and torch.equal(_unused, _unused0), "do not modify the inputs in place: clone them"
assert _new_cb.shape == _cb.shape and _new_unused.shape == _unused.shape, "same shapes as the inputs"
assert int(_new_unused[1]) == 0 and int(_new_unused[0]) == 0, \
    "codes 0 and 1 are chosen by this batch: their count goes back to 0 (code 0 was unused for 7 steps before)"
assert torch.equal(_new_cb[:2], _cb[:2]), "codes chosen by this batch (0 and 1) stay where they are, whatever their old count"
assert not torch.equal(_new_cb[2], _cb[2]), ("code 2 was unused for 2 steps before this batch and not chosen now: 3 steps "
                                             "= patience, so it is dead. Did you update the count with this batch first, "
                                             "and use >= patience?")
assert not torch.equal(_new_cb[3], _cb[3]), "code 3 (3 + 1 unused steps) is dead: move it"
assert torch.equal(_new_cb[2], _vec[4]), (
    f"the first dead code (2) should take the vector farthest from its nearest code, (6, 9) at squared distance 17; "
    f"got {_new_cb[2].tolist()}: rank the vectors by their distance to their NEAREST code, largest first, and move "
    "the code onto the vector (not the vector onto the code)")
assert torch.equal(_new_cb[3], _vec[2]), \
    f"the second dead code (3) takes the second-worst vector, (0, 3) at squared distance 9; got {_new_cb[3].tolist()}"
assert int(_new_unused[2]) == 0 and int(_new_unused[3]) == 0, "a revived code counts as used: its count is 0"
_res = revive_codes(_cb, torch.tensor([0, 0, 0, 0]), _vec, 3)
assert torch.equal(_res[0], _cb) and _res[1].tolist() == [0, 0, 1, 1], \
    f"no code dead yet: nothing moves, and the unchosen codes 2 and 3 count one more unused step; got {_res[1].tolist()}"
_res = revive_codes(torch.tensor([[0.0, 0.0], [5.0, 5.0]]), torch.tensor([2, 0]),
                    torch.tensor([[0.2, 0.0], [5.0, 5.5], [4.0, 5.0]]), 3)
assert _res[1].tolist() == [0, 0] and torch.equal(_res[0], torch.tensor([[0.0, 0.0], [5.0, 5.0]])), \
    "code 0 is chosen by a single vector: it is used (count 0), not dead"
print("Self-check (b) passed.")

# %% grade={"exercise": "revive_codes", "points": 3, "forbidden": ["course_lib.models.vqvae"]}
### BEGIN HIDDEN TESTS
_g = make_generator(72)
for _k, _d, _n, _patience in [(6, 3, 40, 2), (12, 5, 60, 4), (4, 2, 9, 1)]:
    _cb = torch.randn(_k, _d, generator=_g)
    _cb[-2:] += 20.0                                           # two codes far from the data: never chosen
    _unused = torch.randint(0, _patience + 1, (_k,), generator=_g)
    _vec = torch.randn(_n, _d, generator=_g) * 2
    _new_cb, _new_unused = revive_codes(_cb, _unused, _vec, _patience)
    record(f"revive_codes, K={_k}, D={_d}, N={_n}, patience={_patience}", [_new_cb, _new_unused], atol=1e-5,
           message="update the counts with this batch first (chosen codes: 0), dead = count >= patience, the dead "
                   "codes in index order take the vectors farthest from their nearest code, revived codes count 0")
### END HIDDEN TESTS

# %% [markdown]
# **Going further** (not graded): put `revive_codes` in a training loop of `course_lib.models.vqvae.VQVAE` with
# `restart_after=None` (you own the restarts), and compare the test perplexity after 3 epochs with lesson 7's
# random restarts.
