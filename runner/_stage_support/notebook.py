"""Executes a Jupyter notebook's code cells in order, in one namespace, like a script.

Runs inside the stage's own interpreter, so it uses the standard library only. IPython magics and shell
escapes (lines starting with % or !) need a Jupyter kernel; they are reported and skipped.
"""

import json
import sys


def cell_source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def main(argv):
    if len(argv) < 2:
        print("usage: notebook.py NOTEBOOK.ipynb [ARGS...]", file=sys.stderr)
        return 2
    path = argv[1]
    try:
        with open(path, encoding="utf-8") as handle:
            notebook = json.load(handle)
    except (OSError, ValueError) as error:
        print(f"cannot read notebook {path}: {error}", file=sys.stderr)
        return 2
    sys.argv = argv[1:]
    namespace = {"__name__": "__main__", "__file__": path}
    code_cells = [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]
    for number, cell in enumerate(code_cells, start=1):
        lines = []
        for line in cell_source(cell).splitlines():
            if line.lstrip().startswith(("%", "!")):
                print(f"[notebook] cell {number}: skipped {line.strip()!r} (needs a Jupyter kernel)")
                lines.append("")
            else:
                lines.append(line)
        code = compile("\n".join(lines), f"{path} (cell {number})", "exec")
        exec(code, namespace)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
