"""The evaluation engine: what runs inside an EvalRun Job, and `shinsa eval run` on a laptop.

Its outcomes (exit codes, run status) and its results are typed in `shinsa.evaluation.results`.
"""
