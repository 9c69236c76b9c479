"""The course tooling: exercises generated from the phases' own code, graded by their oracles.

It may import any phase; no phase imports it. See the README's "Work through the course".
"""
