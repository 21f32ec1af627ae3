"""Every module imports on its own (no import cycles, no import-time side effects)."""

import importlib
import pkgutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
import sys

import relay


def all_modules():
    yield "relay"
    for info in pkgutil.walk_packages(relay.__path__, "relay."):
        yield info.name


def test_every_module_imports_alone():
    modules = list(all_modules())
    assert len(modules) > 10
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"

    def one(name):
        result = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, timeout=120)
        return name, result

    with ThreadPoolExecutor(max_workers=4) as pool:
        for name, result in pool.map(one, modules):
            assert result.returncode == 0, f"{name} does not import alone:\n{result.stderr}"


def test_modules_stay_small():
    too_big = []
    for name in all_modules():
        spec = importlib.util.find_spec(name)
        if spec and spec.origin and spec.origin.endswith(".py"):
            with open(spec.origin, encoding="utf-8") as fh:
                lines = fh.read().count("\n")
            if lines > 600:
                too_big.append((name, lines))
    assert not too_big, f"split these modules: {too_big}"
