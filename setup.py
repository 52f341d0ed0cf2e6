"""Build step for the one optional C extension; everything else is in pyproject.toml.

``trio_procmgr.platform._clone3spawn`` spawns children straight into their cgroup with
clone3(CLONE_INTO_CGROUP). It is optional: without a C compiler (or Python headers) the
build prints a warning and the package installs without it, and the daemon falls back to
the pure-Python spawn (the daemon moves itself into the cgroup around Popen: same
placement guarantee, a few milliseconds slower per spawn). `describe` says which is used.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("trio_procmgr.platform._clone3spawn",
              sources=["trio_procmgr/platform/_clone3spawn.c"],
              extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
              optional=True),
])
