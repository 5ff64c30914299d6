"""DSPy's own optimizers on a fixed trainset, for `tests/dspy_optimizers.rs`: which demos
LabeledFewShot and BootstrapFewShot give each of ReAct's predictors. Prints JSON:
{predictor: [[augmented, request], ...]}.

Usage: optimizers.py labeled|bootstrap
"""

import json
import sys

import dspy
from dspy.utils.dummies import DummyLM


class CustomerServiceSignature(dspy.Signature):
    """Handle customer service requests using available tools."""

    request: str = dspy.InputField(desc="Customer service request")
    response: str = dspy.OutputField(desc="Helpful customer service response")


def lookup(customer_id: str) -> str:
    """Look up a customer."""
    return "found"


# The examples whose run answers correctly (the metric accepts only those).
RIGHT = {1, 3, 4}


def main():
    train = [dspy.Example(request=f"q{i}", response=f"a{i}").with_inputs("request") for i in range(10)]
    student = dspy.ReAct(CustomerServiceSignature, tools=[lookup], max_iters=5)
    mode = sys.argv[1]
    if mode == "labeled":
        program = dspy.LabeledFewShot(k=4).compile(student, trainset=train)
    elif mode == "bootstrap":
        answers = []
        for i in range(10):
            answers.append({"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}})
            answers.append({"reasoning": "r", "response": f"a{i}" if i in RIGHT else "wrong"})
        dspy.configure(lm=DummyLM(answers))
        opt = dspy.BootstrapFewShot(
            metric=lambda e, p, t=None: e.response == p.response, max_bootstrapped_demos=2, max_labeled_demos=5
        )
        program = opt.compile(student, trainset=train)
    else:
        raise SystemExit(f"unknown mode {mode}")
    out = {}
    for name, predictor in program.named_predictors():
        out[name] = [[bool(d.toDict().get("augmented", False)), d.toDict()["request"]] for d in predictor.demos]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
