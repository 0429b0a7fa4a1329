"""Copies the built libllmk.so (../build by default, LLMK_LIBRARY to choose
another) into the package, so `pip install ./python` after `make` installs
a self-contained binding. No compiler runs here: the package is pure Python."""
import os
import re
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "..", "include", "llmk.h")


def header_version():
    """LLMK_VERSION_MAJOR.MINOR.PATCH of include/llmk.h, the one place the version lives."""
    with open(HEADER) as f:
        text = f.read()
    return ".".join(re.search(r"#define LLMK_VERSION_%s (\d+)" % k, text).group(1) for k in ("MAJOR", "MINOR", "PATCH"))


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        src = os.environ.get("LLMK_LIBRARY") or os.path.join(HERE, "..", "build", "libllmk.so")
        if not os.path.exists(src):
            raise SystemExit("llmk: %s not found: run `make` in the repository first "
                             "(or set LLMK_LIBRARY to a built libllmk.so)" % src)
        shutil.copy2(src, os.path.join(self.build_lib, "llmk", "libllmk.so"))
        with open(os.path.join(self.build_lib, "llmk", "_version_built.py"), "w") as f:
            f.write("__version__ = %r\n" % header_version())


setup(version=header_version(), cmdclass={"build_py": BuildWithLibrary})
