"""Executes a Jupyter notebook the way Jupyter does: nbclient runs its cells in an IPython kernel.

Runs in the stage's own interpreter, whose environment holds nbclient and ipykernel (the local backend
installs them with the stage's requirements). Where they are missing, as in a Bodywork image on
Kubernetes, they are installed on first use with pip into a folder of their own (under
$BODYWORK_CACHE_DIR when set), which the kernel sees through PYTHONPATH.

Every cell's output is printed as the cell finishes. A failing cell is reported with its index and the
kernel's traceback, and the exit code is 1. `sys.argv` is the notebook's path and the stage's args.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings

# The same as runner/backends/notebooks.py installs with a notebook stage's requirements.
REQUIREMENTS = ("nbclient>=0.10", "ipykernel>=6.0")


def say(message):
    print(f"[notebook] {message}", flush=True)


def ensure_support():
    """Makes nbclient and ipykernel importable, installing them beside the stage when they are not."""
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
        return
    except ImportError:
        pass
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    base = os.environ.get("BODYWORK_CACHE_DIR") or tempfile.gettempdir()
    target = os.path.join(base, f"bodywork-notebook-support-py{version}")
    if not os.path.isdir(os.path.join(target, "nbclient")):
        say(f"installing {' and '.join(REQUIREMENTS)} for this Python into {target}")
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                   "--target", target, *REQUIREMENTS]
        if subprocess.run(command, check=False).returncode != 0:
            say("installing nbclient and ipykernel failed; add them to the stage's requirements")
            sys.exit(2)
    sys.path.insert(0, target)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (target, os.environ.get("PYTHONPATH")) if p)


def read_notebook(nbformat, path):
    """The notebook, with the keys that hand-written or trimmed notebooks leave out filled in."""
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict):
        raise ValueError("not a notebook: the file holds no JSON object")
    document.setdefault("metadata", {})
    for cell in document.get("cells", []):
        cell.setdefault("metadata", {})
        if cell.get("cell_type") == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    return nbformat.reads(json.dumps(document), as_version=4)


def print_outputs(cell, cell_index=None, execute_reply=None, **_):
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            text = output.get("text", "")
        elif kind in ("execute_result", "display_data"):
            text = output.get("data", {}).get("text/plain", "")
        else:
            continue
        text = "".join(text) if isinstance(text, list) else text
        if text:
            print(text.rstrip("\n"), flush=True)


def main(argv):
    if len(argv) < 2:
        print("usage: notebook.py NOTEBOOK.ipynb [ARGS...]", file=sys.stderr)
        return 2
    path, args = argv[1], argv[2:]
    ensure_support()
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbformat.warnings import MissingIDFieldWarning

    warnings.filterwarnings("ignore", category=MissingIDFieldWarning)  # notebooks saved by old Jupyter

    try:
        notebook = read_notebook(nbformat, path)
    except Exception as error:  # unreadable, not JSON, or not a valid notebook (jsonschema's error)
        say(f"cannot read notebook {path}: {error}")
        return 2
    # A hidden first cell gives the kernel the stage's args, as a script gets them.
    notebook.cells.insert(0, nbformat.v4.new_code_cell(f"import sys; sys.argv = {json.dumps([path, *args])}"))
    failed = {}

    def on_error(cell, cell_index, execute_reply=None, **_):
        failed["index"] = cell_index - 1

    # Kernel and client talk over Unix sockets in a private folder rather than TCP ports.
    sockets = tempfile.mkdtemp(prefix="bodywork-kernel-")
    kernel = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
    client = NotebookClient(
        notebook,
        km=kernel,
        timeout=None,
        kernel_name="python3",
        resources={"metadata": {"path": os.getcwd()}},
        on_cell_executed=print_outputs,
        on_cell_error=on_error,
    )
    # The kernel runs in a session of its own: a stopped stage must shut it down, not orphan it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        client.execute()
    except CellExecutionError as error:
        index = failed.get("index", "?")
        say(
            f"cell {index} failed (cells counted from 0, markdown cells included): "
            f"{error.ename}: {error.evalue}"
        )
        for line in str(error.traceback).splitlines():
            print(line, flush=True)
        return 1
    finally:
        if kernel.has_kernel:
            kernel.shutdown_kernel(now=True)
        shutil.rmtree(sockets, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
