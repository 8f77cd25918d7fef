"""What the attack tests of one model say together, once all of them are recorded: evidence flows both ways.

Each attack test keeps the robust mask of every attack it ran (hex bits in its details). Tests of one model at the
same norm and eps ran on the same first test points, so on the points they share (the first min(n) of them):

- the worst case across the tests is its own key, `worst/{norm}-{eps}/acc`, with its `n` in the details under
  `ACROSS` (each test's own worst case keeps its own key and points);
- `white_box_disagreement` across tests: where a white-box attack of another test (earlier or later) breaks more
  of the points an attack of this test left robust than Binomial(shared, tolerance) allows by chance, this test's
  row for that attack at that eps (and its worst case, when the other attack breaks its robust points too) is
  marked untrusted, naming the other test; the check is set as fired in this test's flags, so the tables, the
  summary line and `eval --strict` see it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robustcollapse import registry
from robustcollapse.attacks import chance_limit, eps_label
from robustcollapse.evaluate.base import TestResult
from robustcollapse.metrics import samples


def acc_key(prefix: str, name: str, norm: str, eps: float) -> str:
    """The metric key of one attack's (or 'worst') robust accuracy in the test with this prefix."""
    return f"{prefix}/{name}-{norm}-{eps_label(eps)}/acc"


def pack(mask: torch.Tensor) -> str:
    """A boolean mask as a hex bit string (8 points a byte), for the document."""
    return np.packbits(mask.detach().cpu().numpy().astype(bool)).tobytes().hex()


def unpack(text: str, n: int) -> torch.Tensor:
    """The mask of `n` points that `pack` wrote."""
    return torch.from_numpy(np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:n].astype(bool))


def across_key(norm: str, eps: float) -> str:
    """The worst case across every attack test of a model at (norm, eps), on the points they share."""
    return f"worst/{norm}-{eps_label(eps)}/acc"


ACROSS = "attack tests together"  # the details entry (per model) of the worst case across attack tests
CHECK = "white_box_disagreement"


def _white_box(name: str) -> bool:
    kind = registry.get("attack", name)
    return kind.white_box and (kind.iterative or bool(kind.components))


def _entries(details: dict[str, Any], params: Any) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """eps label -> [(attack, robust mask)] of one test's white-box attacks, plus ('worst', its worst case)."""
    out: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for eps in params.eps:
        label = eps_label(eps)
        runs = [(a, details["attacks"].get(f"{a}-{params.norm}-{label}", {})) for a in params.attacks]
        masks = [(a, unpack(run["robust"], details["n"])) for a, run in runs if "robust" in run and _white_box(a)]
        worst = details.get("worst", {}).get(label, {})
        if "robust" in worst:
            masks.append(("worst", unpack(worst["robust"], details["n"])))
        out[label] = masks
    return out


def reconcile(doc: dict[str, Any], tests: dict[str, Any]) -> None:
    """Write the worst case across the attack tests of each model and mark the rows other tests disagree with."""
    for model, per_test in doc["details"].items():
        ran = {t: p for t, p in tests.items() if t in per_test and isinstance(per_test[t], dict)}
        groups: dict[tuple[str, str], list[tuple[str, list[tuple[str, torch.Tensor]]]]] = {}
        for test_id, params in ran.items():
            for label, masks in _entries(per_test[test_id], params).items():
                groups.setdefault((params.norm, label), []).append((test_id, masks))
        for (norm, label), members in groups.items():
            if len(members) < 2:
                continue
            _worst_across(doc, model, norm, _eps(tests[members[0][0]], label), members, tests)
            for test_id, masks in members:
                others = [(t, m) for t, m in members if t != test_id]
                _disagreements(doc, model, test_id, tests[test_id], label, masks, others)


def _worst_across(
    doc: dict[str, Any],
    model: str,
    norm: str,
    eps: float,
    members: list[tuple[str, list[tuple[str, torch.Tensor]]]],
    tests: dict[str, Any],
) -> None:
    worsts = [mask for _, masks in members for name, mask in masks if name == "worst"]
    if len(worsts) < 2:
        return
    shared = min(len(mask) for mask in worsts)
    robust = torch.stack([mask[:shared] for mask in worsts]).all(0)
    key = across_key(norm, eps)
    result = TestResult(
        {key: float(robust.double().mean())}, samples={key: samples.proportion(key)}, arrays={key: robust}
    )
    found = result.uncertainty(float(doc["suite"].get("confidence", 0.95)), int(doc["suite"].get("seed", 0)))
    doc["metrics"][model].update(result.metrics)
    record = doc["details"][model].setdefault(ACROSS, {})
    record[f"{norm}-{eps_label(eps)}"] = {"n": shared, "tests": [t for t, _ in members]}
    doc.setdefault("intervals", {}).setdefault(model, {}).update(found["intervals"])
    doc.setdefault("n", {}).setdefault(model, {}).update(found["n"])
    block = doc.setdefault("samples", {}).setdefault(model, {}).setdefault(ACROSS, {"arrays": {}, "keys": {}})
    block["arrays"].update(found["samples"]["arrays"])
    block["keys"].update(found["samples"]["keys"])
    # trusted when one of the tests' own worst cases at this eps is: the worst across them is at most that number
    members_keys = [(t, acc_key(tests[t].prefix, "worst", norm, eps)) for t, _ in members]
    numbers = [doc["flags"].get(model, {}).get(t, {}).get("numbers", {}).get(k) for t, k in members_keys]
    if numbers and all(entry is not None and not entry["trusted"] for entry in numbers):
        why = "; ".join(f"{t}: {entry['why']}" for (t, _), entry in zip(members_keys, numbers, strict=True))
        trust = doc["flags"].setdefault(model, {}).setdefault(ACROSS, {"numbers": {}})
        trust["numbers"][key] = {"trusted": False, "why": f"no test's own worst case is trusted ({why})"}


def _disagreements(
    doc: dict[str, Any],
    model: str,
    test_id: str,
    params: Any,
    label: str,
    masks: list[tuple[str, torch.Tensor]],
    others: list[tuple[str, list[tuple[str, torch.Tensor]]]],
) -> None:
    """Mark this test's rows at eps `label` that an attack of another test breaks beyond chance."""
    found = []
    for weak, weak_mask in masks:
        for other_id, other_masks in others:
            for strong, strong_mask in other_masks:
                if strong == "worst":
                    continue
                shared = min(len(weak_mask), len(strong_mask))
                count = int((weak_mask[:shared] & ~strong_mask[:shared]).sum())
                if count > chance_limit(shared, params.tolerance):
                    why = f"{strong} (test {other_id}) broke {count} of {shared} shared points {weak} left robust"
                    found.append((weak, why))
    if found:
        _mark(doc, model, test_id, params, label, found)


def _mark(doc: dict[str, Any], model: str, test_id: str, params: Any, label: str, found: list[tuple[str, str]]) -> None:
    flags = doc["flags"].setdefault(model, {}).setdefault(test_id, {"checks": {}, "numbers": {}, "summary": ""})
    check = flags["checks"].setdefault(CHECK, {"flag": False, "value": 0, "threshold": 0})
    across = check.setdefault("across", [])
    for weak, why in found:
        key = acc_key(params.prefix, weak, params.norm, float(_eps(params, label)))
        entry = flags["numbers"].setdefault(key, {"trusted": False, "why": ""})
        note = f"{CHECK}: {why}"
        if note not in entry["why"]:
            entry["trusted"] = False
            entry["why"] = f"{entry['why']}, {note}" if entry["why"] else note
        if f"eps {label}: {why}" not in across:
            across.append(f"eps {label}: {why}")
    own = flags.setdefault("own_summary", flags.get("summary") or "no check fired")
    check.setdefault("own_flag", check["flag"])
    if not check["own_flag"]:
        check["why"] = "; ".join(across)
    check["flag"] = True
    extra = f"{CHECK} across tests ({'; '.join(across)})"
    flags["summary"] = f"fired: {extra}" if own == "no check fired" else f"{own}; {extra}"
    doc["metrics"][model][f"{params.prefix}/flags/{CHECK}"] = 1.0


def _eps(params: Any, label: str) -> float:
    return next(e for e in params.eps if eps_label(e) == label)
