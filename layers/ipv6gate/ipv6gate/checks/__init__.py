"""The three checks. Each takes a DNS session and values, and returns one ``CheckResult``."""
