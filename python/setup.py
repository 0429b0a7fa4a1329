"""Copies the built libllmk.so (../build by default, LLMK_LIBRARY to choose
another) into the package, so `pip install ./python` after `make` installs
a self-contained binding. No compiler runs here: the package is pure Python."""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        src = os.environ.get("LLMK_LIBRARY") or os.path.join(HERE, "..", "build", "libllmk.so")
        if not os.path.exists(src):
            raise SystemExit("llmk: %s not found: run `make` in the repository first "
                             "(or set LLMK_LIBRARY to a built libllmk.so)" % src)
        shutil.copy2(src, os.path.join(self.build_lib, "llmk", "libllmk.so"))


setup(cmdclass={"build_py": BuildWithLibrary})
