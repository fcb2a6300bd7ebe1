"""A second virtualenv and a Metaflow extension whose step decorator runs a step in it
(issue 24): shared by tests/test_stepenv.py and bench/spin_bench.py's --worker case.

The decorator does what ``@conda``/``@pypi`` do (metaflow/plugins/pypi/conda_decorator.py):
its ``runtime_step_cli`` points the task's entrypoint at that venv's interpreter and puts
Metaflow's code on its PYTHONPATH. The venv holds ``termcolor`` 2.3.0, which devd's own
venv lacks, and ``requests`` (Metaflow needs it, and Metaflow's @pypi environments hold it).
It lives in the Makefile's cache (``DEVD_CACHE``, default .cache/), made once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE, VERSION = "termcolor", "2.3.0"

EXT_INIT = 'STEP_DECORATORS_DESC = [("venv_step", ".venv_step.VenvStepDecorator")]\n'
EXT_CONFIG = '''\
# venv_step runs in a spin too, as conda and pypi do (Metaflow's own list, plus it)
SPIN_ALLOWED_DECORATORS = ["conda", "pypi", "conda_base", "pypi_base", "environment",
                           "project", "timeout", "conda_env_internal", "card", "venv_step"]
'''
EXT_DECORATOR = '''\
"""Runs its step in another virtualenv, the way @conda and @pypi do
(metaflow/plugins/pypi/conda_decorator.py): the task's entrypoint is that interpreter, and
Metaflow's code (with this extension) is put on its PYTHONPATH."""
import os
import tempfile

from metaflow.decorators import StepDecorator


class VenvStepDecorator(StepDecorator):
    name = "venv_step"
    defaults = {"python": None}
    _home = None

    def runtime_init(self, flow, graph, package, run_id):
        if VenvStepDecorator._home is None:
            import metaflow
            import metaflow_extensions

            home = VenvStepDecorator._home = tempfile.mkdtemp(prefix="venv-step-")
            os.symlink(os.path.dirname(metaflow.__file__), os.path.join(home, "metaflow"))
            os.symlink(list(metaflow_extensions.__path__)[0],
                       os.path.join(home, "metaflow_extensions"))

    def runtime_step_cli(self, cli_args, retry_count, max_user_code_retries, ubf_context):
        cli_args.env["PYTHONPATH"] = VenvStepDecorator._home
        cli_args.env["PYTHONNOUSERSITE"] = "1"
        cli_args.entrypoint[0] = self.attributes["python"]
'''

def second_venv() -> Path:
    """The venv (made on first use); RuntimeError with pip's last line when PyPI cannot be
    reached."""
    cache = Path(os.environ.get("DEVD_CACHE") or REPO / ".cache") / "stepenv"
    venv = cache / f"venv-{PACKAGE}-{VERSION}-py{sys.version_info[0]}{sys.version_info[1]}"
    stamp = venv / ".devd-ready"
    if stamp.exists():
        return venv
    cache.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", "--without-pip", str(venv)],
                   check=True, timeout=120)
    env = {**os.environ,
           "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or str(REPO / ".cache" / "pip")}
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--disable-pip-version-check", f"{PACKAGE}=={VERSION}", "requests"],
        capture_output=True, text=True, timeout=600, env=env)
    if pip.returncode != 0:
        raise RuntimeError(f"could not install {PACKAGE}=={VERSION} into a second venv "
                           f"(PyPI unreachable?): {pip.stderr.strip().splitlines()[-1:]}")
    stamp.write_text("ok\n")
    return venv


def write_extension(root: Path) -> None:
    """``metaflow_extensions/devdtest/`` in ``root`` (put ``root`` on PYTHONPATH)."""
    plugins = root / "metaflow_extensions" / "devdtest" / "plugins"
    config = root / "metaflow_extensions" / "devdtest" / "config"
    plugins.mkdir(parents=True)
    config.mkdir(parents=True)
    (plugins / "mfextinit_devdtest.py").write_text(EXT_INIT)
    (plugins / "venv_step.py").write_text(EXT_DECORATOR)
    (config / "mfextinit_devdtest.py").write_text(EXT_CONFIG)
