"""The README's library example runs as written and prints what it says."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_library_example_runs():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    op, cov = namespace["op"], namespace["cov"]
    assert op.counts == {"mean": 1, "var": 1, "S1": 35, "S2": 35, "S3": 525, "S4": 11375}
    assert {k: v.size for k, v in cov._asdict().items()} == op.counts
    assert "op.counts                              # {'mean': 1, 'var': 1, 'S1': 35" in README.read_text()
