"""examples/sklearn: the SAM template translates offline; the handler runs on a packed layer."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sklearn"


def _translate(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        """The template names no managed policy, so the translator never looks one up."""

        def load(self) -> dict[str, str]:
            return {}

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # What `sam package` does before deploying: local folders become S3 locations.
    packaged = copy.deepcopy(template)
    packaged["Resources"]["MLLayer"]["Properties"]["ContentUri"] = "s3://artifacts/layer.zip"
    packaged["Resources"]["PredictFunction"]["Properties"]["CodeUri"] = "s3://artifacts/app.zip"
    result: dict[str, Any] = transform(packaged, {}, NoManagedPolicies())
    return result


def _load() -> dict[str, Any]:
    samtranslator = pytest.importorskip("samtranslator")
    from samtranslator.yaml_helper import yaml_parse

    del samtranslator
    data: dict[str, Any] = yaml_parse((EXAMPLE / "template.yaml").read_text())
    return data


def test_sam_template_translates_to_the_intended_function(monkeypatch: pytest.MonkeyPatch) -> None:
    template = _load()
    # The paths the template names exist in the example; `sam build` builds the layer with make.
    assert (EXAMPLE / template["Resources"]["PredictFunction"]["Properties"]["CodeUri"] / "app.py").is_file()
    assert template["Resources"]["MLLayer"]["Properties"]["ContentUri"] == "layer/"
    assert template["Resources"]["MLLayer"]["Metadata"]["BuildMethod"] == "makefile"
    assert "build-MLLayer:" in (EXAMPLE / "layer" / "Makefile").read_text()

    out = _translate(template, monkeypatch)["Resources"]
    functions = [r for r in out.values() if r["Type"] == "AWS::Lambda::Function"]
    layers = {name: r for name, r in out.items() if r["Type"] == "AWS::Lambda::LayerVersion"}
    assert len(functions) == 1 and len(layers) == 1
    fn = functions[0]["Properties"]
    assert fn["Runtime"] == "python3.12" and fn["Architectures"] == ["arm64"]
    assert fn["Handler"] == "app.handler"
    assert fn["EphemeralStorage"] == {"Size": {"Ref": "TmpSizeMB"}}
    assert fn["Layers"] == [{"Ref": next(iter(layers))}]
    assert fn["Environment"]["Variables"]["LAMBDASLIM_METRICS"] == "1"
    layer = next(iter(layers.values()))["Properties"]
    assert layer["CompatibleArchitectures"] == ["arm64"] and layer["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Content"] == {"S3Bucket": "artifacts", "S3Key": "layer.zip"}
    tmp = template["Parameters"]["TmpSizeMB"]
    assert tmp["MinValue"] == 512 and tmp["MaxValue"] == 10240  # Lambda's EphemeralStorage range


def test_sam_translator_rejects_a_broken_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check has teeth: a wrong property type is refused."""
    template = _load()
    from samtranslator.model.exceptions import InvalidDocumentException

    template["Resources"]["PredictFunction"]["Properties"]["Layers"] = "not-a-list"
    with pytest.raises(InvalidDocumentException):
        _translate(template, monkeypatch)


@pytest.mark.slow
@pytest.mark.lambda_tmp("512MB")
def test_example_handler_runs_on_a_packed_layer(cold_start: Any, lambda_layers: Any, lambda_tmp: Any) -> None:
    opt = lambda_layers(["numpy", "scikit-learn"])
    run = cold_start("app.handler", EXAMPLE / "app", {"samples": 600}, warm=1, layers=opt, timeout=120)
    assert run.cold.result.ok, run.runtime.logs()[-3000:]
    body = run.cold.result.json()
    assert body["accuracy"] > 0.6 and len(body["predictions"]) == 8 and body["model_bytes"] > 1000
    assert 0 < body["seconds_left"] <= 120
    assert run.cold.record is not None and run.cold.record["cold_start"] is True
    assert run.warm[0].record is not None and run.warm[0].record["cold_start"] is False
    assert list((lambda_tmp.root / "scratch").iterdir()) == []


def _make_targets(makefile: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(variables with their ``?=`` defaults, target -> its recipe as one shell text)."""
    variables: dict[str, str] = {}
    recipes: dict[str, str] = {}
    current = None
    for line in makefile.read_text().splitlines():
        if line.startswith("\t") and current:
            recipes[current] += line.strip().rstrip("\\") + " "
        elif "?=" in line:
            name, _, value = line.partition("?=")
            variables[name.strip()] = value.strip()
        elif re.match(r"^[\w-]+:", line) and not line.startswith("."):
            current = line.split(":")[0]
            recipes[current] = ""
        else:
            current = None
    return variables, recipes


def test_sam_layer_makefile_packs_for_the_template_target() -> None:
    """``sam build`` runs ``make build-<LogicalId>``: that target exists for every makefile-built
    resource, and its ``lambdaslim pack`` line is valid and targets the template's runtime."""
    import shlex

    from lambdaslim._cli import build_parser

    template = _load()
    built = {name: r for name, r in template["Resources"].items()
             if r.get("Metadata", {}).get("BuildMethod") == "makefile"}
    assert set(built) == {"MLLayer"}
    for name, resource in built.items():
        folder = EXAMPLE / resource["Properties"]["ContentUri"]
        variables, recipes = _make_targets(folder / "Makefile")
        recipe = recipes[f"build-{name}"]
        for var, value in variables.items():
            recipe = recipe.replace(f"$({var})", value)
        assert "$(ARTIFACTS_DIR)" in recipe  # what SAM zips into the layer
        pack = next(cmd for cmd in recipe.split(";") if cmd.strip().startswith("lambdaslim pack "))
        args = build_parser().parse_args(shlex.split(pack)[1:])
        runtimes, archs = resource["Properties"]["CompatibleRuntimes"], resource["Properties"]["CompatibleArchitectures"]
        assert [f"python{args.python}"] == runtimes and [args.arch] == archs == [resource["Metadata"]["BuildArchitecture"]]
        for req in args.requirement_files:
            assert (folder / req).read_text().split() == ["numpy", "scikit-learn"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_sam_layer_makefile_target_builds_a_layer(tmp_path: Path) -> None:
    """What ``sam build`` runs, run here: a small requirement for the template's real target."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\n")
    bindir = Path(sys.executable).parent
    lambdaslim = bindir / "lambdaslim"
    if not lambdaslim.exists():
        pytest.skip("the lambdaslim script is not installed next to this interpreter")
    proc = subprocess.run(
        ["make", "-C", str(EXAMPLE / "layer"), "build-MLLayer", f"ARTIFACTS_DIR={artifacts}",
         f"REQUIREMENTS={requirements}", f"LAMBDASLIM={lambdaslim}", f"PYTHON={sys.executable}"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (artifacts / "python" / "lambdaslim" / "bootstrap.py").is_file()
    (index,) = artifacts.glob("lambdaslim/*/index.json")
    data = json.loads(index.read_text())
    assert [u["name"] for u in data["units"]] == ["six"]
    for unit in data["units"]:
        for part in unit["parts"]:
            assert (index.parent / part["path"]).is_file()
    assert not list(artifacts.rglob("*.zip"))  # the content of the layer zip, not the zip
