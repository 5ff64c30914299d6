#!/usr/bin/env python3
"""Regenerates tests/golden/dspy/*.json with DSPy itself.

Every file holds the messages DSPy's adapters would send to the language model for one
signature and one set of inputs -- rendered with `dspy.ChatAdapter().format(...)` /
`dspy.JSONAdapter().format(...)`, never by calling a model -- plus the DSPy version that
rendered them and the inputs used, so `tests/adapter_golden.rs` can render the same inputs
with Warden and compare byte for byte.

The customer-service goldens use the seed's `CustomerServiceSignature` exactly as the seed
article declares it, and the tools Warden's customer-service MCP server advertises, read
from tests/golden/dspy/customer_service_tools.json (the Rust test checks that file against
the live server's tool list, so it cannot drift from the code).

Usage (from the repository root):
    python3 -m venv /tmp/dspy-venv && /tmp/dspy-venv/bin/pip install 'dspy>=3,<4'
    /tmp/dspy-venv/bin/python scripts/golden/gen_dspy_goldens.py
"""

import json
import os
from typing import Literal

import dspy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "dspy")


class CustomerServiceSignature(dspy.Signature):
    """Handle customer service requests using available tools."""

    request: str = dspy.InputField(desc="Customer service request")
    response: str = dspy.OutputField(desc="Helpful customer service response")


class TypedSignature(dspy.Signature):
    """Classify the customer's message and score urgency."""

    message: str = dspy.InputField(desc="The customer's message")
    history: list[str] = dspy.InputField()
    category: Literal["billing", "technical", "other"] = dspy.OutputField()
    urgent: bool = dspy.OutputField(desc="Needs a reply within the hour")
    score: float = dspy.OutputField()
    tags: list[str] = dspy.OutputField()


REQUEST = "For customer ABC123 create a support ticket as the bbq grill that she bought is defective."

# One tool call into the episode, as ReAct's own trajectory dict holds it.
TRAJECTORY = {
    "thought_0": "I should look up the customer first.",
    "tool_name_0": "get_customer_info",
    "tool_args_0": {"customer_id": "ABC123"},
    "observation_0": {
        "customer_id": "ABC123",
        "name": "Sarah Johnson",
        "tier": "gold",
        "lifetime_value": 2450.5,
        "notes": ["prefers email", "bought a bbq grill"],
    },
}


def seed_tools():
    with open(os.path.join(OUT, "customer_service_tools.json")) as f:
        specs = json.load(f)
    # The functions never run: only name, description and argument schemas reach the prompt.
    return [dspy.Tool(lambda **kw: None, name=s["name"], desc=s["description"], args=s["args"]) for s in specs]


def messages(adapter, signature, inputs, demos=()):
    return [{"role": m["role"], "content": m["content"]} for m in adapter.format(signature, list(demos), inputs)]


def write(name, signature, inputs, msgs, **extra):
    doc = {"dspy": dspy.__version__, "signature": signature, "inputs": inputs, **extra, "messages": msgs}
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    chat, json_adapter = dspy.ChatAdapter(), dspy.JSONAdapter()

    plain = dspy.Signature("question -> answer")
    q = {"question": "What is the capital of France?"}
    write("plain", "question -> answer", q, messages(chat, plain, q))
    write("json_plain", "question -> answer", q, messages(json_adapter, plain, q))

    typed_inputs = {"message": "My invoice is wrong", "history": ["hi", "hello"]}
    write("typed", "TypedSignature", typed_inputs, messages(chat, TypedSignature, typed_inputs))

    demos = [
        {"question": "2+2?", "context": "math", "answer": "4"},
        {"question": "Largest planet?", "answer": "Jupiter"},
    ]
    demo_inputs = {"question": "Capital of France?", "context": "geography"}
    write(
        "demos",
        "question, context -> answer",
        demo_inputs,
        messages(chat, dspy.Signature("question, context -> answer"), demo_inputs, [dspy.Example(**d) for d in demos]),
        demos=demos,
    )

    lists = {"passages": ["alpha", "two\nlines", "has «guillemets»"], "one": ["solo"], "empty": []}
    write(
        "str_field_list_input",
        "passages, one, empty -> answer",
        lists,
        messages(chat, dspy.Signature("passages, one, empty -> answer"), lists),
    )

    # The seed's own signature: Predict, then ReAct's two predictors.
    seed = {"request": REQUEST}
    write("customer_service_predict", "CustomerServiceSignature", seed, messages(chat, CustomerServiceSignature, seed))

    react = dspy.ReAct(CustomerServiceSignature, tools=seed_tools(), max_iters=5)
    step_sig = react.react.signature
    extract_sig = react.extract.predict.signature
    for name, trajectory in (("customer_service_react_empty", {}), ("customer_service_react", TRAJECTORY)):
        inputs = {"request": REQUEST, "trajectory": react._format_trajectory(trajectory)}
        write(name, "ReAct(CustomerServiceSignature).react", inputs, messages(chat, step_sig, inputs), trajectory=trajectory)
    inputs = {"request": REQUEST, "trajectory": react._format_trajectory(TRAJECTORY)}
    write(
        "customer_service_extract",
        "ReAct(CustomerServiceSignature).extract",
        inputs,
        messages(chat, extract_sig, inputs),
        trajectory=TRAJECTORY,
    )
    write(
        "customer_service_react_json",
        "ReAct(CustomerServiceSignature).react",
        inputs,
        messages(json_adapter, step_sig, inputs),
        trajectory=TRAJECTORY,
    )

    with open(os.path.join(OUT, "VERSION.json"), "w") as f:
        json.dump({"dspy": dspy.__version__}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
