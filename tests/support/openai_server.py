"""The OpenAI-compatible test double, kept importable here for the tests and benchmarks.

It lives in `shinsa.devcluster.openai_double` because the dev cluster serves ModelDeployments'
stand-in endpoints with it, and production code does not import tests/.
`python tests/support/openai_server.py --port 8000` still runs it standalone.
"""

from shinsa.devcluster.openai_double import (
    SECRET_REASONING,
    FakeOpenAI,
    Fault,
    Logged,
    count_tokens,
    judge_rating,
    main,
    model_answer,
)

__all__ = [
    "SECRET_REASONING",
    "FakeOpenAI",
    "Fault",
    "Logged",
    "count_tokens",
    "judge_rating",
    "main",
    "model_answer",
]

if __name__ == "__main__":
    main()
