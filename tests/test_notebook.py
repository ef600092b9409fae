"""Notebook/callcenter_gp_walkthrough.ipynb runs top to bottom on the sample data (nbclient), in a
kernel that is this interpreter (a kernelspec written to a temporary directory, so a machine's own
"python3" kernelspec cannot point the run at another Python), and is committed without outputs."""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from MLPipeline.config import DEFAULT_DATA_PATH, PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "Notebook" / "callcenter_gp_walkthrough.ipynb"
KERNEL = "callcenter-gp-test"
CELL_TIMEOUT = 300  # seconds; the slowest cell fits one GP with conformal calibration


@pytest.fixture
def kernel_manager(tmp_path):
    spec_dir = tmp_path / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "callcenter-gp (test)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
    assert specs.get_kernel_spec(KERNEL).argv[0] == sys.executable
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_notebook_runs_top_to_bottom(kernel_manager, monkeypatch):
    assert DEFAULT_DATA_PATH.exists()
    monkeypatch.setenv("NOTEBOOK_DATA_PATH", str(DEFAULT_DATA_PATH))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        km=kernel_manager,
        timeout=CELL_TIMEOUT,
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},  # where Jupyter starts it
    )
    client.execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 12  # histories, distributions, holdout forecasts
    text = "\n".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "learned kernel:" in text and "DataError:" in text
    markdown = [out["data"]["text/markdown"] for out in outputs if "text/markdown" in out.get("data", {})]
    assert markdown and "lower MASE" in markdown[-1]
