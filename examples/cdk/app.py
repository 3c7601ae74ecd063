"""``cdk synth`` / ``cdk deploy`` entry point (cdk.json): one stack, see stack.py."""

from aws_cdk import App

from stack import SklearnStack

app = App()
SklearnStack(app, "LambdaslimSklearn")
app.synth()
