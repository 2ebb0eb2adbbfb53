"""AWS Lambda entry points. Each is a few lines: parse, call one function, report."""
