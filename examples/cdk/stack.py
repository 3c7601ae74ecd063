"""A CDK stack: the scikit-learn handler of examples/sklearn on a layer built by ``lambdaslim pack``.

The layer asset is bundled locally (``aws_cdk.ILocalBundling``): ``lambdaslim pack`` runs on the
machine that synthesizes, resolves wheels for the function's Python and architecture without
Docker, and the content of the layer zip it writes becomes the asset. The Docker image that
``BundlingOptions`` requires is never pulled, since local bundling always succeeds or raises.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, DockerImage, Duration, ILocalBundling, Size, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

HERE = Path(__file__).resolve().parent
APP = HERE.parent / "sklearn" / "app"

_RUNTIMES = {"3.10": lambda_.Runtime.PYTHON_3_10, "3.11": lambda_.Runtime.PYTHON_3_11,
             "3.12": lambda_.Runtime.PYTHON_3_12, "3.13": lambda_.Runtime.PYTHON_3_13}
_ARCHS = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


@jsii.implements(ILocalBundling)
class LambdaslimPack:
    """Local bundling: ``lambdaslim pack -r REQUIREMENTS --python P --arch A`` into the asset."""

    def __init__(self, requirements: str | Path, python: str, arch: str, extra_args: tuple[str, ...] = ()) -> None:
        self.requirements = str(requirements)
        self.python = python
        self.arch = arch
        self.extra_args = extra_args

    def try_bundle(self, output_dir: str, *args: Any, **kwargs: Any) -> bool:
        with tempfile.TemporaryDirectory(prefix="lambdaslim-cdk-") as tmp:
            layer_zip = Path(tmp) / "layer.zip"
            subprocess.run(
                [sys.executable, "-m", "lambdaslim", "pack", "-r", self.requirements, "--python", self.python,
                 "--arch", self.arch, "-o", str(layer_zip), "--quiet", *self.extra_args],
                check=True)
            with zipfile.ZipFile(layer_zip) as zf:
                zf.extractall(output_dir)
        return True


class SklearnStack(Stack):
    """The packed layer, and the function that imports from it."""

    def __init__(self, scope: Construct, construct_id: str, *, requirements: str | Path = HERE / "layer" / "requirements.txt",
                 python: str = "3.12", arch: str = "arm64", tmp_mb: int = 1024, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        runtime, architecture = _RUNTIMES[python], _ARCHS[arch]
        requirements = Path(requirements).resolve()
        self.layer = lambda_.LayerVersion(
            self, "MLLayer",
            code=lambda_.Code.from_asset(str(requirements.parent), bundling=BundlingOptions(
                image=DockerImage.from_registry("unused-lambdaslim-bundles-locally"),
                local=LambdaslimPack(requirements, python, arch))),
            compatible_runtimes=[runtime], compatible_architectures=[architecture],
            description="packed by lambdaslim pack")
        self.function = lambda_.Function(
            self, "Predict",
            runtime=runtime, architecture=architecture, handler="app.handler",
            code=lambda_.Code.from_asset(str(APP)), layers=[self.layer],
            memory_size=2048, timeout=Duration.seconds(60), ephemeral_storage_size=Size.mebibytes(tmp_mb),
            environment={"LAMBDASLIM_METRICS": "1", "LAMBDASLIM_METRICS_NAMESPACE": "sklearn-demo"})
