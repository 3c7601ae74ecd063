"""The runtime part: what runs in Lambda when ``lambdaslim.bootstrap`` is imported.

Reading a layer's index, the import hook, extraction into the extraction root, publishing
trees, zip bundles, the /tmp storage budget and the environment settings. It imports nothing
from the build or testing parts, and this ``__init__`` imports nothing at all: import time
is the cold start (see tests/test_import_time.py).
"""
