"""DSPy's own BootstrapFewShot on the same work as `cargo bench --bench optimize`.

The shipped trainset (config/trainset.toml), dspy.ReAct over four instant Python tools
named like the service's, and DSPy's DummyLM answering each run with a tool call, then
finish, then the extract step's answer; a metric that accepts every run and
max_bootstrapped_demos = the trainset's size, so every example bootstraps. Prints
examples per second.

Run (DSPy from PyPI in a scratch environment):
    python3 -m venv /tmp/dspy && /tmp/dspy/bin/pip install dspy==3.4.1
    /tmp/dspy/bin/python benches/dspy_bootstrap.py
"""

import json
import pathlib
import time
import tomllib

import dspy
from dspy.utils.dummies import DummyLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
CUSTOMER = json.dumps({"customer_id": "ABC123", "name": "Sarah Johnson", "tier": "gold", "status": "active"})


def get_customer_info(customer_id: str) -> str:
    """A customer-service tool."""
    return CUSTOMER


def get_recent_customers(customer_id: str) -> str:
    """A customer-service tool."""
    return CUSTOMER


def create_support_ticket(customer_id: str) -> str:
    """A customer-service tool."""
    return CUSTOMER


def calculate_account_value(customer_id: str) -> str:
    """A customer-service tool."""
    return CUSTOMER


class CustomerServiceSignature(dspy.Signature):
    """Handle customer service requests using available tools."""

    request: str = dspy.InputField(desc="Customer service request")
    response: str = dspy.OutputField(desc="Helpful customer service response")


RUN = [
    {"next_thought": "Look up the customer.", "next_tool_name": "get_customer_info", "next_tool_args": {"customer_id": "ABC123"}},
    {"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}},
    {"reasoning": "Looked it up.", "response": "Sarah Johnson is a gold customer."},
]


def main():
    data = tomllib.loads((ROOT / "config" / "trainset.toml").read_text())
    trainset = [dspy.Example(request=e["request"]).with_inputs("request") for e in data["example"]]
    tools = [get_customer_info, get_recent_customers, create_support_ticket, calculate_account_value]
    rounds, warm = 10, 2
    dspy.configure(lm=DummyLM(RUN * len(trainset) * (rounds + warm)))
    opt = dspy.BootstrapFewShot(metric=lambda e, p, t=None: True, max_bootstrapped_demos=len(trainset), max_labeled_demos=16)
    for _ in range(warm):
        opt.compile(dspy.ReAct(CustomerServiceSignature, tools=tools, max_iters=5), trainset=trainset)
    start = time.perf_counter()
    for _ in range(rounds):
        opt.compile(dspy.ReAct(CustomerServiceSignature, tools=tools, max_iters=5), trainset=trainset)
    secs = time.perf_counter() - start
    n = rounds * len(trainset)
    print(f"DSPy {dspy.__version__} BootstrapFewShot, DummyLM and instant tools: {n / secs:.0f} examples/s ({secs / n * 1e6:.0f} µs per example; {len(trainset)} examples x {rounds} compiles)")


if __name__ == "__main__":
    main()
