"""The package's version: that of include/llmk.h (LLMK_VERSION_MAJOR/MINOR/
PATCH), the one place it lives. An installed package carries the version
its setup.py read from the header (_version_built.py); a source tree
reads the header itself."""
import os
import re


def _from_header(path):
    with open(path) as f:
        text = f.read()
    parts = [re.search(r"#define LLMK_VERSION_%s (\d+)" % k, text).group(1) for k in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


try:
    from ._version_built import __version__  # written by setup.py at install
except ImportError:
    __version__ = _from_header(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include",
                                            "llmk.h"))
