"""examples/sklearn: the SAM template translates offline; the handler runs on a packed layer."""

from __future__ import annotations

import copy
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
    # The paths the template names exist in the example (the layer after build.sh).
    assert (EXAMPLE / template["Resources"]["PredictFunction"]["Properties"]["CodeUri"] / "app.py").is_file()
    assert template["Resources"]["MLLayer"]["Properties"]["ContentUri"] == "build/layer.zip"
    assert "lambdaslim pack" in (EXAMPLE / "build.sh").read_text()

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
