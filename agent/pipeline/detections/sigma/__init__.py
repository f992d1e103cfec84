"""Sigma rules on the agent: pySigma parses, fields.py maps names, compiler.py builds evaluators."""
