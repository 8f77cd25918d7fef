"""OOD detectors, registered in the `detector` family. Every detector returns scores where higher means *more* OOD.

Detectors that need training features are fitted on the model's pass over the training split (Mahalanobis:
class means + one shared covariance; KNN: L2-normalised features; ViM: principal space of the features;
hypercube: the two modes of each coordinate and the class codes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustcollapse import registry
from robustcollapse.metrics.binarity import class_codes, two_modes
from robustcollapse.metrics.collapse import class_means
from robustcollapse.models.forward import Pass
from robustcollapse.registry import register


@dataclass
class DetectorOptions:
    energy_t: float = 1.0
    odin_t: float = 1000.0
    odin_eps: float = 0.0014
    knn_k: int = 50
    vim_dim: int | None = None


class Detector:
    """fit(train pass, model) once; score(pass, images, model) -> (N,) scores, higher = more OOD."""

    needs_images = False

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options

    def fit(self, train: Pass, model: nn.Module, num_classes: int) -> None:
        """Nothing to fit for logit-based detectors."""

    def score(self, p: Pass, images: torch.Tensor | None, model: nn.Module) -> torch.Tensor:
        raise NotImplementedError


def _detector(name: str):
    def wrap(cls: type[Detector]) -> type[Detector]:
        register("detector", name)(cls)
        return cls

    return wrap


@_detector("msp")
class MSP(Detector):
    """Maximum softmax probability (Hendrycks & Gimpel 2017); score = -max softmax."""

    def score(self, p, images, model):
        return -F.softmax(p.logits.double(), 1).amax(1)


@_detector("maxlogit")
class MaxLogit(Detector):
    """Maximum logit (Hendrycks et al. 2022); score = -max logit."""

    def score(self, p, images, model):
        return -p.logits.double().amax(1)


@_detector("energy")
class Energy(Detector):
    """Energy (Liu et al. 2020); score = -T logsumexp(logits / T), T = energy_t."""

    def score(self, p, images, model):
        t = self.options.energy_t
        return -t * torch.logsumexp(p.logits.double() / t, 1)


@_detector("odin")
class ODIN(Detector):
    """ODIN (Liang et al. 2018): temperature odin_t and an input step of odin_eps (pixel scale) that raises the
    max softmax; score = -max softmax of the perturbed input."""

    needs_images = True

    def score(self, p, images, model):
        t, eps = self.options.odin_t, self.options.odin_eps
        out = []
        for i in range(0, len(images), 256):
            x = images[i : i + 256].clone().requires_grad_(True)
            with torch.enable_grad():
                log_probs = F.log_softmax(model(x) / t, 1)
                grad = torch.autograd.grad(log_probs.amax(1).sum(), x)[0]
            with torch.inference_mode():
                x_adv = (x.detach() + eps * grad.sign()).clamp(0, 1)
                out.append(-F.softmax(model(x_adv).double() / t, 1).amax(1))
        return torch.cat(out)


@_detector("mahalanobis")
class Mahalanobis(Detector):
    """Mahalanobis (Lee et al. 2018, no input step): min over classes of the Mahalanobis distance (not its square)
    to the class mean under one shared (tied) covariance of the training features."""

    def fit(self, train, model, num_classes):
        z = train.z.double()
        self.means, _ = class_means(z, train.y, num_classes)
        centred = z - self.means[train.y]
        self.precision = torch.linalg.pinv(centred.T @ centred / len(z), hermitian=True)

    def score(self, p, images, model):
        diff = p.z.double()[:, None, :] - self.means[None]  # N x K x D
        return torch.einsum("nkd,de,nke->nk", diff, self.precision, diff).amin(1).clamp_min(0).sqrt()


@_detector("knn")
class KNN(Detector):
    """Deep nearest neighbours (Sun et al. 2022): distance from the L2-normalised feature to its knn_k-th
    nearest normalised training feature."""

    def fit(self, train, model, num_classes):
        self.bank = F.normalize(train.z.float(), dim=1)

    def score(self, p, images, model):
        k = min(self.options.knn_k, len(self.bank))
        query = F.normalize(p.z.float(), dim=1)
        out = [
            torch.cdist(query[i : i + 1024], self.bank).topk(k, dim=1, largest=False).values[:, -1]
            for i in range(0, len(query), 1024)
        ]
        return torch.cat(out).double()


@_detector("vim")
class ViM(Detector):
    """Virtual-logit matching (Wang et al. 2022): residual norm of the feature outside its principal subspace
    (origin -W^+ b), scaled to the max logits on training data, minus the logsumexp of the logits.
    Principal dimension vim_dim, default 1000 for D >= 2048, 512 for D >= 768, else D/2."""

    def fit(self, train, model, num_classes):
        z = train.z.double()
        d = z.shape[1]
        layer = model.classifier_layer()
        if layer is not None and layer.weight.shape[1] == d and layer.bias is not None:
            self.origin = -(torch.linalg.pinv(layer.weight.detach().double()) @ layer.bias.detach().double())
        else:
            self.origin = z.mean(0)
        dim = self.options.vim_dim or (1000 if d >= 2048 else 512 if d >= 768 else d // 2)
        centred = z - self.origin
        _, eigvecs = torch.linalg.eigh(centred.T @ centred / len(z))  # ascending eigenvalues
        self.residual_space = eigvecs[:, : max(d - dim, 0)]
        residual = (centred @ self.residual_space).norm(dim=1)
        self.alpha = float(train.logits.double().amax(1).mean() / residual.mean().clamp_min(1e-12))

    def score(self, p, images, model):
        residual = ((p.z.double() - self.origin) @ self.residual_space).norm(dim=1)
        return self.alpha * residual - torch.logsumexp(p.logits.double(), 1)


@_detector("hypercube")
class Hypercube(Detector):
    """Binary-latent detector: distance of z (each coordinate mapped so that its two training modes sit at -1 and
    +1) to the nearest class code in {-1, +1}^d seen in training."""

    def fit(self, train, model, num_classes):
        z = train.z.double()
        lo, hi = two_modes(z)
        self.centre = (lo + hi) / 2
        self.scale = ((hi - lo) / 2).clamp_min(1e-12)
        codes, _, _ = class_codes(z, train.y, num_classes)
        self.codes = torch.unique(codes.double() * 2 - 1, dim=0)

    def score(self, p, images, model):
        scaled = (p.z.double() - self.centre) / self.scale
        return torch.cdist(scaled, self.codes).amin(1)


def make_detector(name: str, options: DetectorOptions) -> Detector:
    return registry.get("detector", name)(options)
