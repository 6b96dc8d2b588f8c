"""Where edgeq finds the files that ship beside the package: profiles, templates, C runtime."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
PROFILE_DIR = REPO_ROOT / "device_profiles"
TEMPLATE_DIR = REPO_ROOT / "firmware_templates"
RUNTIME_DIR = PACKAGE_DIR / "runtime"
