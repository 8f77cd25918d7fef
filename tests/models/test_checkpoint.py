from __future__ import annotations

import json

import pytest
import torch

from robustcollapse.errors import UserError
from robustcollapse.models import ModelSpec, build_model
from robustcollapse.models.checkpoint import load_checkpoint, save_checkpoint, sidecar_path


def spec(head: str = "binary", **head_kwargs) -> ModelSpec:
    return ModelSpec(
        backbone="smallcnn",
        backbone_kwargs={"width": 4},
        head=head,
        head_kwargs=head_kwargs,
        in_channels=1,
        image_size=28,
        num_classes=10,
        mean=(0.13,),
        std=(0.31,),
    )


def test_round_trip_keeps_outputs_and_records_hash(tmp_path):
    torch.manual_seed(0)
    model = build_model(spec(d=5)).eval()
    x = torch.rand(3, 1, 28, 28)
    meta = save_checkpoint(model, tmp_path / "m.safetensors", {"recipe": {"epochs": 1}})
    loaded, side = load_checkpoint(tmp_path / "m.safetensors")
    assert torch.equal(loaded(x), model(x))
    assert loaded.features(x).shape == (3, 5)
    assert side["sha256"] == meta["sha256"] and side["recipe"] == {"epochs": 1}
    assert side["model"]["head_kwargs"] == {"d": 5}


def test_tampered_weights_are_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(build_model(spec(d=5)), path, {})
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(UserError, match="does not match its sidecar"):
        load_checkpoint(path)


def test_sidecar_that_does_not_fit_the_weights_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(build_model(spec(d=5)), path, {})
    side = json.loads(sidecar_path(path).read_text())
    side["model"]["head_kwargs"] = {"d": 7}
    sidecar_path(path).write_text(json.dumps(side))
    with pytest.raises(UserError, match="weights do not fit the sidecar's model"):
        load_checkpoint(path)
    side["model"]["head"] = "linear"
    side["model"]["head_kwargs"] = {}
    sidecar_path(path).write_text(json.dumps(side))
    with pytest.raises(UserError, match="weights do not fit the sidecar's model"):
        load_checkpoint(path)


def test_missing_sidecar_is_a_clear_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(build_model(spec("linear")), path, {})
    sidecar_path(path).unlink()
    with pytest.raises(UserError, match="sidecar .* is missing"):
        load_checkpoint(path)


def test_binary_head_loss_is_ce_plus_lambda_exp_mean_square():
    model = build_model(spec(d=3, lam=2.0))
    z = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, 0.0]])
    logits = torch.zeros(2, 10)
    y = torch.tensor([1, 2])
    expected = torch.log(torch.tensor(10.0)) + 2.0 * torch.exp(torch.tensor(6.0 / 6))
    assert model.loss(logits, z, y).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(
    ("failing_target", "survivor"),
    [
        (".safetensors.pending", "old"),  # killed while writing the new weights: the old pair stays
        (".json.pending", "old"),  # killed before the commit point (the pending sidecar): the old pair stays
        ("m.safetensors", "new"),  # killed after the commit point: recovery finishes the save
        ("m.json", "new"),  # killed between the two final renames: recovery finishes the save
    ],
)
def test_a_save_killed_at_any_step_leaves_the_old_pair_or_the_new_one(tmp_path, monkeypatch, failing_target, survivor):
    import os

    import robustcollapse.models.checkpoint as checkpoint

    torch.manual_seed(0)
    old, new = build_model(spec(d=5)).eval(), build_model(spec(d=5)).eval()
    path = tmp_path / "m.safetensors"
    save_checkpoint(old, path, {"recipe": {"epochs": 1}})
    real_replace = os.replace

    class Killed(BaseException):
        pass

    def dying_replace(src, dst):
        if str(dst).endswith(failing_target):
            raise Killed  # the process dies here: nothing after this line of the save runs
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(Killed):
        save_checkpoint(new, path, {"recipe": {"epochs": 2}})
    monkeypatch.setattr(os, "replace", real_replace)

    loaded, side = load_checkpoint(path)  # recovers first; never refuses
    expected = old if survivor == "old" else new
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), expected(x))
    assert side["recipe"] == {"epochs": 1 if survivor == "old" else 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
    assert checkpoint.recover_checkpoint(path) is None  # nothing left to do


def test_a_truncated_weights_file_is_one_clear_error(tmp_path):
    import hashlib

    path = tmp_path / "m.safetensors"
    save_checkpoint(build_model(spec(d=5)), path, {})
    path.write_bytes(path.read_bytes()[:100])
    side = json.loads(sidecar_path(path).read_text())
    side["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar_path(path).write_text(json.dumps(side))
    with pytest.raises(UserError, match="unreadable safetensors file"):
        load_checkpoint(path)
