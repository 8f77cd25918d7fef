from pathlib import Path

import pytest

from robustcollapse.config import ConfigError, load_suite

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
name: t
dataset: digits
models:
  - name: a
    train:
      backbone: {name: mlp, hidden: 16}
      head: {name: binary, d: 4}
tests:
  - kind: clean
  - kind: collapse
    split: test
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["mnist", "smoke", "cifar", "ood"])
def test_shipped_suites_validate(name):
    suite = load_suite(ROOT / "suites" / f"{name}.yaml")
    assert {m.name for m in suite.models} == {"baseline", "binary"}
    binary = next(m for m in suite.models if m.name == "binary")
    baseline = next(m for m in suite.models if m.name == "baseline")
    assert binary.train.head.name == "binary" and baseline.train.head.name == "linear"
    # the YAML merge key gives both models the same recipe apart from the head
    assert binary.train.model_copy(update={"head": baseline.train.head}) == baseline.train


@pytest.mark.parametrize("name", ["binary-encoding", "binary-encoding-cifar10"])
def test_paper_suites_share_one_recipe_but_the_head(name):
    suite = load_suite(ROOT / "suites" / f"{name}.yaml")
    heads = {m.name: (m.train.head.name, m.train.head.args.get("penalty")) for m in suite.models}
    assert heads == {
        "no-pen": ("linear", None),
        "linear-pen": ("linear-pen", None),
        "nonlinear-pen": ("nonlinear-pen", None),
        "binary-exp": ("binary", "exp"),
        "binary-l2": ("binary", "l2"),
    }
    first = suite.models[0].train
    assert all(m.train.model_copy(update={"head": first.head}) == first for m in suite.models)


def test_component_arguments_are_validated_and_defaulted(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))
    recipe = suite.models[0].train
    assert recipe.backbone.args == {"hidden": 16, "depth": 2}
    assert recipe.head.args == {
        "d": 4,
        "lam": 10.0,
        "penalty": "exp",
        "gamma0": 0.01,
        "gamma_growth": 1.05,
        "gamma_max": 1e6,
    }
    assert suite.test_ids() == ["clean", "collapse"]


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (
            ("head: {name: binary, d: 4}", "head: binray"),
            "suite.yaml:7 models[0].train.head: unknown head 'binray' (did you mean 'binary'?); "
            "known: binary, etf, haframe, linear, linear-pen, nonlinear-pen, spherical",
        ),
        (("hidden: 16", "hidden: -3"), "suite.yaml:6 models[0].train.backbone.hidden: Input should be greater than"),
        (
            ("hidden: 16", "hiden: 16"),
            "suite.yaml:6 models[0].train.backbone.hiden: unknown field; allowed: hidden, depth",
        ),
        (
            ("  - kind: clean\n", "  - kind: clena\n"),
            "suite.yaml:9 tests[0].kind: unknown test 'clena' (did you mean 'clean'?)",
        ),
        (("    split: test", "    split: val"), "suite.yaml:11 tests[1].split: Input should be 'train' or 'test'"),
        (("dataset: digits", "dataset: digits\nbatchsize: 3"), "suite.yaml:3 batchsize: unknown field; allowed: name,"),
        (
            ("dataset: digits", "dataset: cifar11"),
            "suite.yaml:2 dataset: unknown dataset 'cifar11' (did you mean 'cifar10'?)",
        ),
        (("models:", "models: 3\nx:"), "suite.yaml:3 models: Input should be a valid list"),
        (("- name: a", "- name: a b"), "suite.yaml:4 models[0].name: String should match pattern"),
    ],
)
def test_bad_suites_give_file_line_field_and_allowed_values(tmp_path, replace, expected):
    path = write(tmp_path, GOOD.replace(*replace))
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "suite.yaml")), message
    assert expected in message, message


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, GOOD.replace("  - kind: clean", "  - kind: [clean"))
    with pytest.raises(ConfigError, match=r"suite.yaml:\d+ invalid YAML"):
        load_suite(path)


def test_model_without_checkpoint_or_recipe_is_rejected(tmp_path):
    text = "name: t\ndataset: digits\nmodels:\n  - name: a\ntests:\n  - kind: clean\n"
    with pytest.raises(ConfigError, match=r"suite.yaml:4 models\[0\]: give a `checkpoint:` path"):
        load_suite(write(tmp_path, text))


def test_collapse_family_suites_validate():
    collapse = load_suite(ROOT / "suites" / "collapse.yaml")
    assert {m.name: m.train.head.name for m in collapse.models} == {
        "baseline": "linear",
        "binary": "binary",
        "etf": "etf",
        "spherical": "spherical",
        "coarse": "linear",
    }
    assert next(m for m in collapse.models if m.name == "coarse").train.coarse == "pairs"
    cifar100 = load_suite(ROOT / "suites" / "cifar100.yaml")
    haf = next(m for m in cifar100.models if m.name == "haframe").train.head.args
    assert haf["hierarchy"] == "cifar100" and haf["gamma"] == 2.0 and haf["alpha"] == 0.4
    assert "classes" not in haf, "class names are injected by the library, never a suite argument"


def test_the_replicas_suite_expands_each_seed_into_its_own_model():
    suite = load_suite(ROOT / "suites" / "replicas.yaml")
    names = [m.name for m in suite.models]
    assert names == [f"{m}-s{s}" for m in ("baseline", "binary") for s in (0, 1, 2)]
    assert [m.train.seed for m in suite.models] == [0, 1, 2, 0, 1, 2]
    assert {m.replica_of for m in suite.models} == {"baseline", "binary"}
    assert suite.reference_model() == "baseline-s0"
