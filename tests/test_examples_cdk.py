"""examples/cdk: the stack synthesizes, and its layer asset is what ``lambdaslim pack`` wrote.

aws-cdk-lib is big (about 430 MB installed, 8 s to import): it comes with the ``cdk`` extra.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cdk"


@pytest.mark.slow
def test_cdk_stack_synthesizes_with_a_lambdaslim_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("node") is None:
        pytest.skip("aws-cdk-lib runs on node (jsii), which is not on the PATH")
    pytest.importorskip("aws_cdk", reason="the cdk extra is not installed (pip install -e '.[cdk]')")
    monkeypatch.setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from aws_cdk import App
    from aws_cdk.assertions import Match, Template

    from stack import SklearnStack  # type: ignore[import-not-found]

    requirements = tmp_path / "layer" / "requirements.txt"  # a small requirement: same path, faster
    requirements.parent.mkdir()
    requirements.write_text("six\n")
    outdir = tmp_path / "cdk.out"
    app = App(outdir=str(outdir))
    stack = SklearnStack(app, "Test", requirements=requirements, python="3.12", arch="arm64", tmp_mb=2048)
    template = Template.from_stack(stack)

    template.resource_count_is("AWS::Lambda::LayerVersion", 1)
    template.has_resource_properties("AWS::Lambda::LayerVersion", {
        "CompatibleArchitectures": ["arm64"], "CompatibleRuntimes": ["python3.12"]})
    template.has_resource_properties("AWS::Lambda::Function", {
        "Runtime": "python3.12", "Architectures": ["arm64"], "Handler": "app.handler",
        "EphemeralStorage": {"Size": 2048},
        "Layers": [{"Ref": Match.string_like_regexp("MLLayer")}],
    })
    # The layer asset is the content of the zip lambdaslim pack wrote.
    assets = [p for p in outdir.glob("asset.*") if p.is_dir()]
    layers = [p for p in assets if (p / "python" / "lambdaslim" / "bootstrap.py").is_file()]
    assert len(assets) == 2 and len(layers) == 1, assets  # the layer and the function's code
    (index,) = layers[0].glob("lambdaslim/*/index.json")
    assert [u["name"] for u in json.loads(index.read_text())["units"]] == ["six"]
    assert not list(layers[0].rglob("*.zip"))
    (code,) = set(assets) - set(layers)
    assert (code / "app.py").is_file()
    del sys.modules["stack"]
