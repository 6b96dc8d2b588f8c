"""Where edgeq finds the files that ship with it: device profiles, firmware templates, the C runtime
and the fitted cost coefficients.

In the repository they sit at the top level (device_profiles/, firmware_templates/) and inside the
package (edgeq/runtime/, edgeq/measure/cost_coefficients.json); a wheel maps the top-level folders
into the package (pyproject.toml), and importlib.resources finds them there.
"""

from importlib.resources import files
from pathlib import Path

PACKAGE_DIR = Path(str(files("edgeq")))
_REPO = PACKAGE_DIR.parent


def _shipped(name: str) -> Path:
    """`name` inside the installed package, else beside the package in the repository."""
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else _REPO / name


PROFILE_DIR = _shipped("device_profiles")
TEMPLATE_DIR = _shipped("firmware_templates")
RUNTIME_DIR = PACKAGE_DIR / "runtime"
COST_COEFFICIENTS = PACKAGE_DIR / "measure" / "cost_coefficients.json"
# The repository checkout, for the tests and benchmarks that run from it (None once installed).
REPO_ROOT = _REPO if (_REPO / "pyproject.toml").is_file() else None
