"""The serving runtime's own virtualenv, built from `runtime-requirements.txt`.

Serving runs in the environment production runs, not in the orchestration one: MLServer and
the model libraries pinned exactly, plus this package's code linked in (as a serving image
would copy it). "The candidate loads in the runtime" is then a real check: a model written
with other library versions meets the runtime's versions, and their warnings.

The environment is keyed by the requirements file and the Python version, built once into a
temporary folder and renamed into place (a crash leaves no half-built runtime), under a file
lock so concurrent builders wait for one another.
"""

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

from ml_release.errors import ReleaseError
from ml_release.home import release_home

REQUIREMENTS = Path(__file__).with_name("runtime-requirements.txt")
RUNTIME_DIR_ENV = "ML_RELEASE_RUNTIME_DIR"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
_COMPLETE = ".complete"


class RuntimeBuildError(ReleaseError):
    """The serving runtime's environment could not be built."""


def runtime_root() -> Path:
    """Folder holding the runtime environments (`$ML_RELEASE_RUNTIME_DIR` or home/runtime)."""
    configured = os.environ.get(RUNTIME_DIR_ENV)
    return Path(configured).resolve() if configured else release_home() / "runtime"


def runtime_key(requirements: Path = REQUIREMENTS) -> str:
    """12 hex digits naming the environment: requirements and Python version."""
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return digest.hexdigest()[:12]


def runtime_python(
    root: Path | None = None,
    requirements: Path = REQUIREMENTS,
    progress: Callable[[str], None] = lambda message: None,
) -> Path:
    """The runtime's Python, building its environment first when it does not exist yet.

    Raises:
        RuntimeBuildError: pip failed; its output's tail is in the message.
    """
    root = root or runtime_root()
    key = runtime_key(requirements)
    target = root / key
    if (target / _COMPLETE).exists():
        return target / "bin" / "python"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / _COMPLETE).exists():
            progress(f"building the serving runtime environment {target} (once)")
            _build(target, requirements)
    return target / "bin" / "python"


def _build(target: Path, requirements: Path) -> None:
    staging = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    if target.exists():  # an interrupted build of an older layout
        shutil.rmtree(target)
    venv.EnvBuilder(with_pip=True, symlinks=True).create(staging)
    python = staging / "bin" / "python"
    command = [str(python), "-m", "pip", "install", "--quiet", "--no-input"]
    done = subprocess.run([*command, "-r", str(requirements)], capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeBuildError(
            f"could not build the serving runtime from {requirements} (pip exit "
            f"{done.returncode}):\n{done.stderr[-2000:]}\nFix the pins, then run "
            "`ml-release runtime` again."
        )
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    # The package's code, linked like an image's /app layer: only ml_release, never the
    # orchestration environment's site-packages.
    app = staging / "app"
    app.mkdir()
    (app / "ml_release").symlink_to(PACKAGE_DIR, target_is_directory=True)
    (site / "ml_release_app.pth").write_text(f"{target / 'app'}\n")  # its final place
    (staging / _COMPLETE).write_text(requirements.read_text())
    staging.rename(target)


def feature_code_paths(module_path: str, folder: Path) -> tuple[Path, ...]:
    """PYTHONPATH entries giving the runtime the spec's feature module, and nothing beside it.

    `ml_release` is already linked into the runtime. For a team's own package (say
    `my_team.features`), its top-level package is linked into `folder`, which is returned.
    """
    top = module_path.split(".")[0]
    if top == "ml_release":
        return ()
    found = importlib.util.find_spec(top)
    if found is None:
        raise RuntimeBuildError(f"features.code: package {top!r} is not importable here")
    source = (
        Path(next(iter(found.submodule_search_locations)))
        if found.submodule_search_locations
        else Path(str(found.origin))
    )
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / source.name
    if not link.exists():
        link.symlink_to(source.resolve(), target_is_directory=source.is_dir())
    return (folder,)


if __name__ == "__main__":  # `make install` builds it beside the project's own packages
    print(f"serving runtime: {runtime_python(progress=print)}")
