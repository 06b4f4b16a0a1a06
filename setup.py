"""The project's folders under one namespace: app/ is installed as freehold.app, deploy/ as
freehold.deploy, roles/ as freehold.roles, loadgen/ as freehold.loadgen (setuptools package-dir).

Why one namespace and not split distributions: the four folders version and ship together on the
operator's machine, and one `pip install` of one name is what an operator expects; what the
servers get is cut apart anyway (the app's own `freehold-app` wheel, deploy/artifacts/release.py;
the load generator's modules, deploy/loadtest/remote.py). `freehold` has no __init__.py, so the
app's wheel installs freehold.app beside it without a clash. Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

FOLDERS = ("app", "deploy", "roles", "loadgen")

setup(
    package_dir={f"freehold.{top}": top for top in FOLDERS},
    packages=[f"freehold.{top}{'.' + sub if sub else ''}" for top in FOLDERS
              # namespace packages too: the roles' templates/ and the app's migrations/ are data
              for sub in ["", *find_namespace_packages(top, exclude=["*__pycache__*"])]],
)
