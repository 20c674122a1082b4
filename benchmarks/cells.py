"""Two sweep cells beyond the linear net, and their PyTorch baselines (issue 15, item 2).

Both cells take ``{"seed", "init_scale"}`` (and optionally ``"steps"``), draw
their data and init from the seed, run full-batch float32 GD with rate η on
their own fixed sample, L = (1/2P) Σ_p (y_p − ŷ_p)², and return the final
loss. The baselines get the very same arrays (``stacked``, drawn by the same
JAX code) and run the same updates.

* ``relu``: two-layer ReLU net ŷ = a·relu(W x) (``models.relu.apply``, no
  biases), n_in = 16, hidden = 32, one output, P = 128 Gaussian inputs and a
  4-unit ReLU teacher with ±1 output weights. W entries N(0, σ²/n_in), a
  entries N(0, σ²/hidden). Flops per step (dots only): forward X Wᵀ and A aᵀ,
  backward Aᵀ r and G_Zᵀ X: 4 P h (n_in + 1).
* ``attention``: multi-head linear attention with merged key-query
  (``models.attention.apply``, arXiv 2501.16265, Eq. 1), D = 8, H = 4 heads,
  in-context linear regression (``tasks.icl.sample``, Λ = I/D, N = 16 context
  tokens) with a sampled loss over B = 32 sequences; init
  ``models.attention.init_merged(scale=σ)`` (on the paper's manifold). Only
  the value's last row a_h = W^V_h[D, :] and W^KQ_h enter ŷ_b = (1/N) Σ_h
  a_hᵀ S_b W^KQ_h z_q,b with S_b = Z_b Z_bᵀ. Flops per step (dots only):
  W^KQ z_q, S·(W^KQ z_q), S a_h and the outer products of the W^KQ gradient,
  each 2 H B (D+1)²: 8 H B (D+1)².

The saddle side is the library path: autodiff of the model's loss (jax.grad)
and the GD step in ``lax.fori_loop``, run by ``dynamics.sweep.run_sweep``. The
batched PyTorch baselines write the gradients by hand on (n, …) stacks with
torch.bmm / einsum (the fastest batched PyTorch we found: no autograd graph,
S_b precomputed once since it does not change); the per-model loops train one
net at a time with autograd + torch.optim.SGD. ``torch_batched(..., float64)``
on the CPU is the accuracy reference for everyone.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tasks import icl
from models import attention, relu

# ReLU cell
N_IN, HIDDEN, N_SAMPLES, TEACHER_UNITS = 16, 32, 128, 4
# attention cell
DIM, HEADS, N_CONTEXT, N_SEQ = 8, 4, 16, 32
ETA = {"relu": 0.05, "attention": 0.05}
INIT_SCALES = {"relu": (0.01, 0.03, 0.1, 0.3), "attention": (0.01, 0.03, 0.1, 0.3)}
KINDS = ("relu", "attention")


def flops_per_step(kind: str) -> float:
    """Dot flops per net per GD step (elementwise work counted for no one)."""
    if kind == "relu":
        return 4.0 * N_SAMPLES * HIDDEN * (N_IN + 1)
    return 8.0 * HEADS * N_SEQ * (DIM + 1) ** 2


# ------------------------------------------------------------------ problems

def relu_problem(seed, init_scale):
    """(params {"w": (h, n_in), "a": (1, h)}, x (P, n_in), y (P,)) of one cell, float32."""
    kx, kt, ka, kw, kv = jax.random.split(jax.random.key(seed), 5)
    x = jax.random.normal(kx, (N_SAMPLES, N_IN), jnp.float32)
    teacher_w = jax.random.normal(kt, (TEACHER_UNITS, N_IN), jnp.float32) / np.sqrt(N_IN)
    teacher_a = jnp.where(jax.random.bernoulli(ka, 0.5, (TEACHER_UNITS,)), 1.0, -1.0).astype(jnp.float32)
    y = jax.nn.relu(x @ teacher_w.T) @ teacher_a
    w = init_scale / np.sqrt(N_IN) * jax.random.normal(kw, (HIDDEN, N_IN), jnp.float32)
    a = init_scale / np.sqrt(HIDDEN) * jax.random.normal(kv, (1, HIDDEN), jnp.float32)
    return {"w": w, "a": a}, x, y


def attention_problem(seed, init_scale):
    """(params {"kq", "v"} each (H, D+1, D+1), tokens (B, N+1, D+1), targets (B,)), float32."""
    kd, ki = jax.random.split(jax.random.key(seed))
    tokens, targets = icl.sample(kd, lam=np.full(DIM, 1.0 / DIM), n_context=N_CONTEXT, batch=N_SEQ,
                                       dtype=jnp.float32)
    k1, k2 = jax.random.split(ki)
    shape = (HEADS, DIM + 1, DIM + 1)
    # init_merged's draw, written out so that a traced init_scale can scale it
    kq = (init_scale * jax.random.normal(k1, shape, jnp.float32)).at[:, DIM, :DIM].set(0.0)
    v = (init_scale * jax.random.normal(k2, shape, jnp.float32)).at[:, DIM, :DIM].set(0.0)
    return {"kq": kq, "v": v}, tokens, targets


PROBLEMS = {"relu": relu_problem, "attention": attention_problem}


def model_loss(kind: str):
    apply = (lambda p, x: relu.apply(p, x)[:, 0]) if kind == "relu" else attention.apply

    def loss(params, x, y):
        return 0.5 * jnp.mean((y - apply(params, x)) ** 2)

    return loss


def cell(kind: str, steps=None):
    """run_sweep cell: {"seed", "init_scale"[, "steps"]} → {"loss": final loss}.

    ``steps=None`` reads the step count from the cell's values (a traced trip
    count: one compiled program serves every step count)."""
    loss, problem, eta = model_loss(kind), PROBLEMS[kind], ETA[kind]
    grad = jax.grad(loss)

    def run(values):
        params, x, y = problem(values["seed"], values["init_scale"])
        n = values["steps"] if steps is None else steps

        def step(_, p):
            return jax.tree_util.tree_map(lambda w, g: w - eta * g, p, grad(p, x, y))

        return {"loss": loss(jax.lax.fori_loop(0, n, step, params), x, y)}

    return run


def stacked(kind: str, seeds, init_scales) -> dict:
    """The cells' params and data as NumPy stacks (leading axis = cell), for the baselines."""
    params, x, y = jax.jit(jax.vmap(PROBLEMS[kind]))(jnp.asarray(seeds), jnp.asarray(init_scales, jnp.float32))
    out = {k: np.array(v) for k, v in params.items()}
    out.update(x=np.array(x), y=np.array(y))
    return out


def initial_loss(kind: str, arrays: dict) -> np.ndarray:
    return torch_batched(kind, arrays, 0, device="cpu", dtype="float64")


# ------------------------------------------------------------------ PyTorch

def _torch_arrays(arrays: dict, device, dtype):
    import torch

    return {k: torch.as_tensor(np.asarray(v), device=device).to(getattr(torch, dtype)) for k, v in arrays.items()}


def torch_batched(kind: str, arrays: dict, steps: int, *, device="cpu", dtype="float32") -> np.ndarray:
    """Hand-batched PyTorch: the GD step with hand-written gradients on (n, …) stacks."""
    import torch

    t = _torch_arrays(arrays, device, dtype)
    eta = ETA[kind]
    with torch.inference_mode():
        if kind == "relu":
            w, a, x, y = t["w"].clone(), t["a"].clone(), t["x"], t["y"]      # (n,h,d) (n,1,h) (n,P,d) (n,P)
            scale = 1.0 / x.shape[1]
            for _ in range(steps):
                z = torch.bmm(x, w.transpose(1, 2))                            # (n, P, h)
                act = torch.relu(z)
                r = torch.bmm(act, a.transpose(1, 2)).squeeze(2).sub_(y).mul_(scale)   # (n, P): (ŷ − y)/P
                ga = torch.bmm(r.unsqueeze(1), act)                            # (n, 1, h)
                gz = (r.unsqueeze(2) * a).mul_(z > 0)                          # (n, P, h)
                gw = torch.bmm(gz.transpose(1, 2), x)                          # (n, h, d)
                w.sub_(gw, alpha=eta)
                a.sub_(ga, alpha=eta)
            r = torch.bmm(torch.relu(torch.bmm(x, w.transpose(1, 2))), a.transpose(1, 2)).squeeze(2) - y
            return (0.5 * (r.double() ** 2).mean(1)).cpu().numpy()
        tokens, y = t["x"], t["y"]                                             # (n, B, N+1, D+1), (n, B)
        n_ctx = tokens.shape[2] - 1
        s = torch.einsum("cbti,cbtj->cbij", tokens, tokens) / n_ctx            # (n, B, D+1, D+1): S_b / N
        q = tokens[:, :, n_ctx, :]                                             # (n, B, D+1) query tokens
        kq = t["kq"].clone()                                                   # (n, H, D+1, D+1)
        v = t["v"].clone()
        a = v[:, :, -1, :].clone()                                             # (n, H, D+1): W^V_h[D, :]
        scale = 1.0 / y.shape[1]

        def forward(kq, a):
            kz = torch.einsum("chij,cbj->cbhi", kq, q)                         # W^KQ_h z_q
            u = torch.einsum("cbij,cbhj->cbhi", s, kz)                         # (S/N) W^KQ_h z_q
            return torch.einsum("chi,cbhi->cb", a, u), u

        for _ in range(steps):
            pred, u = forward(kq, a)
            r = pred.sub_(y).mul_(scale)                                       # (n, B): (ŷ − y)/B
            ga = torch.einsum("cb,cbhi->chi", r, u)
            sa = torch.einsum("cbij,chj->cbhi", s, a)                          # (S/N) a_h (S symmetric)
            gkq = torch.einsum("cb,cbhi,cbj->chij", r, sa, q)
            kq.sub_(gkq, alpha=eta)
            a.sub_(ga, alpha=eta)
        r = forward(kq, a)[0] - y
        return (0.5 * (r.double() ** 2).mean(1)).cpu().numpy()


def torch_loop(kind: str, arrays: dict, steps: int, *, device="cpu") -> np.ndarray:
    """Per-model PyTorch, as a training loop is usually written: one net at a
    time, autograd of the loss, torch.optim.SGD."""
    import torch

    eta = ETA[kind]
    losses = []
    n = arrays["y"].shape[0]
    for c in range(n):
        one = _torch_arrays({k: v[c] for k, v in arrays.items()}, device, "float32")
        x, y = one["x"], one["y"]
        if kind == "relu":
            params = [one["w"].clone().requires_grad_(), one["a"].clone().requires_grad_()]

            def predict(p):
                return (torch.relu(x @ p[0].T) @ p[1].T)[:, 0]
        else:
            params = [one["kq"].clone().requires_grad_(), one["v"].clone().requires_grad_()]
            n_ctx = x.shape[1] - 1

            def predict(p):
                s = torch.einsum("bni,bnj->bij", x, x)
                return torch.einsum("hi,bij,hjk,bk->b", p[1][:, -1, :], s, p[0], x[:, n_ctx]) / n_ctx
        opt = torch.optim.SGD(params, lr=eta)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = 0.5 * torch.mean((y - predict(params)) ** 2)
            loss.backward()
            opt.step()
        with torch.no_grad():
            losses.append(0.5 * float(torch.mean((y - predict(params)).double() ** 2)))
    return np.asarray(losses)
