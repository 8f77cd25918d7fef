"""Counter-based random numbers: every draw is a hash of (seed, corruption, severity, image index, stream, element).

So an image is corrupted the same way whatever the batch it arrives in, and the same on CPU and GPU: `Rng` holds one
32-bit key per image, and a draw hashes the key with the element's counter; nothing is carried from draw to draw.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass

import torch

MASK32 = 0xFFFFFFFF
NORMAL_STREAMS, POISSON_STREAMS = 1 << 16, 1 << 17  # stream offsets so derived draws never reuse a plain stream


def _mix32(v: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash with good avalanche (xor-shift-multiply), on int64 tensors holding 32-bit values.

    One copy, then in place: the hash runs over every random number, and memory traffic is most of its cost."""
    v = v & MASK32
    v ^= v >> 16
    v *= 0x7FEB352D
    v &= MASK32
    v ^= v >> 15
    v *= 0x846CA68B
    v &= MASK32
    v ^= v >> 16
    return v


@functools.lru_cache(maxsize=64)
def _counters(numel: int, stream: int, device: torch.device) -> torch.Tensor:
    """Hashed element counters of one stream: the image-independent half of every draw, reused across batches."""
    return _mix32(torch.arange(numel, device=device, dtype=torch.int64) + (stream * 0x9E3779B9 & MASK32))


@dataclass(frozen=True)
class Rng:
    """Random numbers for a batch of images, a pure function of (key, image index, stream, element)."""

    keys: torch.Tensor  # (N,) int64: one 32-bit key per image

    @classmethod
    def for_images(cls, seed: int, name: str, severity: int, index: torch.Tensor) -> Rng:
        base = zlib.crc32(f"{seed}/{name}/{severity}".encode())
        return cls(_mix32(_mix32(index.long()) ^ base))

    def uniform(self, stream: int, *shape: int) -> torch.Tensor:
        """(N, *shape) float32 strictly inside (0, 1): (k + 0.5)/2^23 from 23 hash bits, every value exact in
        float32 (24 bits would round the top one, 1 − 2^−25, up to 1.0)."""
        counters = _counters(math.prod(shape), stream, self.keys.device)
        bits = _mix32(counters[None, :] ^ self.keys[:, None])
        bits >>= 9
        return bits.float().add_(0.5).mul_(1.0 / (1 << 23)).reshape(len(self.keys), *shape)

    def normal(self, stream: int, *shape: int) -> torch.Tensor:
        """(N, *shape) standard normal: Box-Muller on two uniform streams, both its outputs (cos and sin) used."""
        numel = math.prod(shape)
        half = (numel + 1) // 2
        radius = self.uniform(NORMAL_STREAMS + 2 * stream, half).log_().mul_(-2.0).sqrt_()
        angle = self.uniform(NORMAL_STREAMS + 2 * stream + 1, half).mul_(2.0 * math.pi)
        pair = torch.cat([radius * torch.cos(angle), radius.mul_(torch.sin(angle))], dim=1)
        return pair[:, :numel].reshape(len(self.keys), *shape)

    def poisson(self, stream: int, mean: torch.Tensor) -> torch.Tensor:
        """Poisson samples of `mean` (N, ...): exact inverse-CDF below mean 25, N(m, m) rounded above.

        The inverse-CDF walk drops the values already at their CDF whenever more than half of those left are, so
        its cost falls with the Poisson tail instead of running every element to the slowest one."""
        mean = mean.contiguous()  # the samples are written through flat views of `out`, which follows mean's layout
        shape = mean.shape[1:]
        small = mean < 25
        out = torch.zeros_like(mean)
        if not small.all():
            approx = mean + mean.sqrt() * self.normal(POISSON_STREAMS + stream, *shape)
            out = torch.where(small, out, torch.clamp(torch.round(approx), min=0))
        if small.any():
            flat_u = self.uniform(POISSON_STREAMS + stream, *shape).reshape(-1)
            where = None if small.all() else small.reshape(-1).nonzero().squeeze(1)
            # float64: a float32 CDF can stall just below a uniform near 1 and walk on to the cap
            m = (mean.reshape(-1) if where is None else mean.reshape(-1)[where]).double()
            u = (flat_u if where is None else flat_u[where]).double()
            p = torch.exp(-m)
            k = torch.zeros_like(m)
            cdf, steps, alive = p.clone(), torch.zeros_like(m), torch.arange(len(m), device=m.device)
            for i in range(1, 80):
                keep = u > cdf
                kept = int(keep.sum())
                if kept == 0:
                    break
                steps += keep
                if kept < len(keep) // 2:  # compacting costs a gather per array: only once half are done
                    done = (~keep).nonzero().squeeze(1)
                    k[alive[done]] = steps[done]
                    idx = keep.nonzero().squeeze(1)
                    m, u, p, cdf, steps, alive = (t[idx] for t in (m, u, p, cdf, steps, alive))
                p = p * m / i
                cdf = cdf + p
            k[alive] = steps
            k = k.to(out.dtype)
            flat = out.reshape(-1)
            if where is None:
                flat.copy_(k)
            else:
                flat[where] = k
        return out
