#!/usr/bin/env python3
"""DSPy's side of tests/dspy_interop.rs: Warden's saved programs checked with DSPy itself.

The program is the seed's: `dspy.ReAct(CustomerServiceSignature, tools=[...], max_iters=5)`
over four plain Python functions named, typed and described like the tools Warden's
customer-service MCP server advertises (in the order Warden lists them). The functions
never run: only the module structure, names and signatures matter.

Usage (the Rust test runs it in a venv with the pinned DSPy):
    interop.py describe         the fresh program's predictors and each tool's str(Tool)
    interop.py load PATH        program.load(PATH), then what DSPy loaded
    interop.py save PATH        set demos and instructions in Python, program.save(PATH),
                                then what was set
Each prints one JSON object on stdout.
"""

import json
import sys

import dspy


class CustomerServiceSignature(dspy.Signature):
    """Handle customer service requests using available tools."""

    request: str = dspy.InputField(desc="Customer service request")
    response: str = dspy.OutputField(desc="Helpful customer service response")


def calculate_account_value(customer_id: str, amounts: list[float]) -> dict:
    """Calculate a customer's account value from purchase amounts: total, average, count, min, max and tier."""
    raise NotImplementedError


def create_support_ticket(
    customer_id: str, subject: str, description: str, priority: str, idempotency_key: str | None = None
) -> dict:
    """Open a support ticket for a customer. Pass an idempotency_key to make retries safe."""
    raise NotImplementedError


def get_customer_info(customer_id: str) -> dict:
    """Look up one customer's profile: contact details, tier, status, lifetime value, notes."""
    raise NotImplementedError


def get_recent_customers(limit: int | None = None) -> dict:
    """List the most recently active customers (newest first)."""
    raise NotImplementedError


TOOLS = [calculate_account_value, create_support_ticket, get_customer_info, get_recent_customers]


def program():
    return dspy.ReAct(CustomerServiceSignature, tools=TOOLS, max_iters=5)


def state(prog):
    """What a program holds, per predictor, in plain JSON."""
    out = {}
    for name, p in prog.named_predictors():
        demos = [d.toDict() if hasattr(d, "toDict") else dict(d) for d in p.demos]
        sig = p.signature.dump_state()
        out[name] = {"instructions": sig["instructions"], "fields": sig["fields"], "demos": demos}
    return {"dspy": dspy.__version__, "predictors": out}


def main():
    cmd = sys.argv[1]
    prog = program()
    if cmd == "describe":
        doc = state(prog)
        doc["tools"] = [str(t) for t in prog.tools.values()]
    elif cmd == "load":
        prog.load(sys.argv[2])
        doc = state(prog)
    elif cmd == "save":
        # A bootstrapped step demo, as BootstrapFewShot records one for `react`...
        prog.react.demos = [
            dspy.Example(
                request="For customer ABC123 create a support ticket as the bbq grill that she bought is defective.",
                trajectory="",
                next_thought="I should look up the customer first.",
                next_tool_name="get_customer_info",
                next_tool_args={"customer_id": "ABC123"},
                augmented=True,
            )
        ]
        # ...and a labeled example, as LabeledFewShot sets on every predictor.
        prog.extract.predict.demos = [
            dspy.Example(request="What is the account value of XYZ789?", response="XYZ789's account value is $1,240.00.")
        ]
        prog.extract.predict.signature = prog.extract.predict.signature.with_instructions(
            "Answer the customer from the trajectory. Never invent ticket numbers."
        )
        prog.save(sys.argv[2])
        doc = state(prog)
    else:
        sys.exit(f"unknown command {cmd!r}: describe, load PATH or save PATH")
    json.dump(doc, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
