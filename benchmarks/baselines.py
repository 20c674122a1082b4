"""The baselines of sweep_throughput.py: the same GD on the same nets, outside JAX.

Every function takes the nets as float32 (n, d, d) NumPy stacks W1, W2, W*
and runs ``steps`` simultaneous GD updates with rate η on
L = ½‖W2 W1 − W*‖²_F,

    E = W2 W1 − W*,   W1 ← W1 − η W2ᵀ E,   W2 ← W2 − η E W1ᵀ,

returning each net's final loss (float64). ``numpy_reference`` is the same in
float64, the accuracy reference for every implementation.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from timing import timed


def numpy_batched(w1, w2, w_star, steps: int, eta: float) -> np.ndarray:
    """Hand-batched NumPy: np.matmul on (n, d, d) stacks, in place, float32."""
    a, b = w1.copy(), w2.copy()
    e, ga, gb = np.empty_like(a), np.empty_like(a), np.empty_like(b)
    eta = np.float32(eta)
    for _ in range(steps):
        np.matmul(b, a, out=e)
        e -= w_star
        np.matmul(b.transpose(0, 2, 1), e, out=ga)
        np.matmul(e, a.transpose(0, 2, 1), out=gb)
        ga *= eta
        gb *= eta
        a -= ga
        b -= gb
    np.matmul(b, a, out=e)
    e -= w_star
    return 0.5 * np.sum(e.astype(np.float64) ** 2, axis=(1, 2))


def numpy_reference(w1, w2, w_star, steps: int, eta: float) -> np.ndarray:
    """The same GD in float64 (the accuracy reference)."""
    a, b, s = (x.astype(np.float64) for x in (w1, w2, w_star))
    for _ in range(steps):
        e = b @ a - s
        a, b = a - eta * (b.transpose(0, 2, 1) @ e), b - eta * (e @ a.transpose(0, 2, 1))
    return 0.5 * np.sum((b @ a - s) ** 2, axis=(1, 2))


def torch_bmm(w1, w2, w_star, steps: int, eta: float, device: str = "cpu") -> np.ndarray:
    """Batched PyTorch: torch.bmm on the (n, d, d) stacks, in place, float32, on ``device``
    (accelerator.py runs the same loop on a GPU)."""
    import torch

    with torch.inference_mode():
        a, b, s = (torch.as_tensor(w, device=device).clone() for w in (w1, w2, w_star))
        e, ga, gb = torch.empty_like(a), torch.empty_like(a), torch.empty_like(b)
        for _ in range(steps):
            torch.bmm(b, a, out=e)
            e.sub_(s)
            torch.bmm(b.transpose(1, 2), e, out=ga)
            torch.bmm(e, a.transpose(1, 2), out=gb)
            a.sub_(ga.mul_(eta))
            b.sub_(gb.mul_(eta))
        torch.bmm(b, a, out=e)
        e.sub_(s)
        return 0.5 * np.sum(e.cpu().numpy().astype(np.float64) ** 2, axis=(1, 2))


def _with_threads(fn):
    """fn(..., threads=t) runs fn with t torch threads (restored afterwards)."""

    @functools.wraps(fn)
    def wrapped(*args, threads: int = 1, **kwargs):
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapped


def faster_threads(fn, w1, w2, w_star, steps: int, eta: float) -> int:
    """1 or all cores, whichever runs fn faster on two nets (best of 3): per-model
    ops on 32² / 64² tensors are often faster on one thread than on two."""
    cands = sorted({1, os.cpu_count() or 1})
    k = min(2, w1.shape[0])
    secs = {t: min(timed(lambda t=t: fn(w1[:k], w2[:k], w_star[:k], steps, eta, threads=t))[1] for _ in range(3))
            for t in cands}
    return min(secs, key=secs.get)


@_with_threads
def torch_loop(w1, w2, w_star, steps: int, eta: float) -> np.ndarray:
    """Per-model PyTorch, as a training loop is usually written: one net at a
    time, autograd of the loss, torch.optim.SGD (the same 3 matmuls per step)."""
    import torch

    losses = []
    for i in range(w1.shape[0]):
        params = [torch.tensor(w1[i], requires_grad=True), torch.tensor(w2[i], requires_grad=True)]
        s = torch.from_numpy(w_star[i])
        opt = torch.optim.SGD(params, lr=eta)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = 0.5 * torch.sum((params[1] @ params[0] - s) ** 2)
            loss.backward()
            opt.step()
        with torch.no_grad():
            losses.append(0.5 * float(torch.sum((params[1] @ params[0] - s).double() ** 2)))
    return np.asarray(losses)


@_with_threads
def torch_loop_inplace(w1, w2, w_star, steps: int, eta: float) -> np.ndarray:
    """Per-model PyTorch, hand-written: one net at a time, the step spelled out
    with torch.mm and in-place updates, no autograd."""
    import torch

    losses = []
    with torch.inference_mode():
        for i in range(w1.shape[0]):
            a, b = torch.from_numpy(w1[i].copy()), torch.from_numpy(w2[i].copy())
            s = torch.from_numpy(w_star[i])
            for _ in range(steps):
                e = torch.mm(b, a).sub_(s)
                ga = torch.mm(b.t(), e)
                gb = torch.mm(e, a.t())
                a.sub_(ga.mul_(eta))
                b.sub_(gb.mul_(eta))
            losses.append(0.5 * float(torch.sum((torch.mm(b, a) - s).double() ** 2)))
    return np.asarray(losses)
