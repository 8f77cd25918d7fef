"""Fixed classifier frames: the simplex ETF and the Hierarchy-Aware Frame (HAFrame, Liang & Davis, ICCV 2023).

Both are K unit vectors in R^d whose Gram matrix is a target similarity matrix S: S = V Λ Vᵀ, W = (Q Λ^½ Vᵀ)ᵀ
with Q ∈ R^{d×K} orthonormal columns (random, from the QR of a seeded Gaussian matrix, when `rotate`; else the
first K standard basis vectors), so W Wᵀ = S (up to S's rank, which must be ≤ d).
"""

from __future__ import annotations

import torch

from robustcollapse.errors import UserError

PSD_TOL = 1e-6


def simplex_etf_gram(k: int) -> torch.Tensor:
    """1 on the diagonal, −1/(K−1) off it."""
    return torch.full((k, k), -1.0 / (k - 1), dtype=torch.float64).fill_diagonal_(1.0)


def frame_from_gram(gram: torch.Tensor, d: int, seed: int = 0, rotate: bool = True) -> torch.Tensor:
    """(K, d) float32 vectors realising the PSD Gram matrix `gram` (negative eigenvalues within PSD_TOL are 0)."""
    evals, evecs = torch.linalg.eigh(gram.double())
    evals = torch.where(evals.abs() < PSD_TOL, torch.zeros_like(evals), evals)
    if bool((evals < 0).any()):
        raise ValueError("target similarity matrix is not positive semi-definite")
    rank = int((evals > 0).sum())
    if d < rank:
        raise UserError(f"a frame of this similarity matrix needs d >= {rank} (its rank), got d = {d}")
    coords = evecs * evals.clamp_min(0).sqrt()  # (K, K): coords @ coords.T = gram
    coords = coords[:, evals > 0]  # (K, rank)
    if rotate:
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(d, rank, generator=gen, dtype=torch.float64))
    else:
        q = torch.eye(d, rank, dtype=torch.float64)
    return (coords @ q.T).float()  # (K, d)


def similarity_from_heights(heights: torch.Tensor, s_min: float, gamma: float, mapping: str = "exp") -> torch.Tensor:
    """HAFrame's target cosine similarities from LCA heights h: exponential (1 − s_min)·exp(−γ h / h_max) + s_min,
    or linear 1 − (1 − s_min)·h / h_max; 1 on the diagonal."""
    h_max = float(heights.max()) or 1.0
    if mapping == "exp":
        sim = (1 - s_min) * torch.exp(-gamma * heights / h_max) + s_min
    else:
        sim = 1 - (1 - s_min) * heights / h_max
    return sim.double().fill_diagonal_(1.0)


def haframe_similarity(
    heights: torch.Tensor, gamma: float, mapping: str = "exp", candidates: int = 100
) -> torch.Tensor:
    """The target S with maximal separation: the most negative s_min among `candidates` evenly spaced values from
    −1/(K−1) down to −1 for which S is PSD (|λ| < 1e-6 counts as 0)."""
    k = heights.shape[0]
    best = None
    for s_min in torch.linspace(-1.0 / (k - 1), -1.0, candidates).tolist():
        sim = similarity_from_heights(heights, s_min, gamma, mapping)
        if float(torch.linalg.eigvalsh(sim).min()) > -PSD_TOL:
            best = sim
    if best is None:
        raise UserError("no HAFrame similarity matrix is positive semi-definite for this hierarchy")
    return best
