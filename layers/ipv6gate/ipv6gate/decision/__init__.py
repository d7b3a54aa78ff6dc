"""The rule, pure: per-recipient verdicts and replies, tenants, whether the verdict is certain, the decision record."""
