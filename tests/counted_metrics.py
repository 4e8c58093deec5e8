"""The metric names the code counts through Powertools, read from its source: the alarms and the
dashboard may only watch these (tests/unit/test_alarms.py, test_dashboard.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_ROOTS = [ROOT / "functions", ROOT / "layers" / "shared"]
# What the shop did, as its operators read it first (the dashboard's first rows).
BUSINESS = {
    "OrdersPlaced",
    "OrdersConfirmed",
    "OrdersRejected",
    "OrdersCancelled",
    "OrdersExpired",
    "PaymentsSucceeded",
    "PaymentsFailed",
    "PaymentsRefunded",
    "EmailsSent",
    "EmailsRefused",
    "EmailOutcomeUnknown",
}


def counted_metric_names() -> set[str]:
    """Every metric name the code passes to Powertools' add_metric: a literal, or looked up in a
    module's dict of them (``METRIC_OF_EVENT[...]``)."""
    names: set[str] = set()
    for root in CODE_ROOTS:
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text())
            dicts = {
                target.id: node.value
                for node in tree.body
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for call in ast.walk(tree):
                if not (isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "add_metric"):
                    continue
                name = next(keyword.value for keyword in call.keywords if keyword.arg == "name")
                if isinstance(name, ast.Constant):
                    names.add(str(name.value))
                else:
                    assert isinstance(name, ast.Subscript) and isinstance(name.value, ast.Name), ast.unparse(call)
                    looked_up = dicts[name.value.id]
                    names |= {str(value.value) for value in looked_up.values if isinstance(value, ast.Constant)}
    return names
